"""Fail fast: a rank that raises takes the whole job down, loudly, instead of hanging.

A rank that dies while its peers wait in a receive or a collective would leave them
waiting forever. :func:`run_guarded` runs a rank's work and, if it raises, prints
``rank R: <Type>: <message>`` to stderr (with ``debug`` the traceback too, which the
caller reads from ``RINGPIPE_DEBUG``: :mod:`ringpipe.environment`; Ctrl-C prints
``rank R: interrupted``), flushes, and calls ``MPI_Abort`` on the world communicator
(MPI standard §11.5: the implementation
terminates every process of the job; Hydra's mpiexec then exits non-zero, within a
second here). ``SystemExit`` with a non-zero status counts as a failure too: a rank
that called ``sys.exit(3)`` would otherwise block in ``MPI_Finalize`` while its peers
wait for it. ``SystemExit(0)`` and ``SystemExit(None)`` are a normal return of status 0.
Errors that every rank detects alike before the job starts (bad arguments) are handled
before the guard, collectively, by :mod:`ringpipe.cli.ranks.main`.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from ringpipe.mpi.loader import load_mpi

T = TypeVar("T")

#: Exit status of a job aborted because a rank raised.
ABORT_STATUS = 1


def format_rank_error(rank: int, exc: BaseException) -> str:
    """``rank R: <Type>: <message>``, the line a failing rank prints (``rank R:
    interrupted`` for Ctrl-C)."""
    if isinstance(exc, KeyboardInterrupt):
        return f"rank {rank}: interrupted"
    return f"rank {rank}: {type(exc).__name__}: {exc}"


def run_guarded(work: Callable[[], T], debug: bool = False) -> T | int:
    """Run ``work()``; if it raises (``SystemExit`` with a non-zero status included),
    report the error with this rank (and with ``debug`` its traceback) and abort the
    job."""
    mpi = load_mpi()
    world = mpi.COMM_WORLD
    try:
        return work()
    except SystemExit as exc:
        if exc.code in (0, None):
            return 0
        abort(world, exc, debug)
    except BaseException as exc:  # noqa: BLE001 - any failure must abort every rank
        abort(world, exc, debug)


def abort(world: Any, exc: BaseException,  # noqa: ANN401 - a communicator
          debug: bool = False) -> NoReturn:
    """Print ``rank R: <Type>: <message>`` (and, with ``debug``, the traceback), then
    ``MPI_Abort``."""
    detail = "".join(traceback.format_exception(exc)) if debug else ""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe must not stop the abort
        pass
    # Unbuffered write straight to fd 2, then a moment for the launcher to forward it:
    # MPI_Abort kills the job at once and could otherwise lose the message.
    os.write(2, f"{format_rank_error(world.Get_rank(), exc)}\n{detail}".encode())
    time.sleep(0.2)
    world.Abort(ABORT_STATUS)
    # MPI_Abort does not return in MPICH, but a fresh-clone CI run once saw it return
    # (the job was already being torn down): end this process without a traceback
    os._exit(ABORT_STATUS)
