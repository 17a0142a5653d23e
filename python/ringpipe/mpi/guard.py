"""Fail fast: a rank that raises takes the whole job down, loudly, instead of hanging.

A rank that dies while its peers wait in a receive or a collective would leave them
waiting forever. :func:`run_guarded` runs a rank's work and, if it raises, prints
``rank R: <Type>: <message>`` (then the traceback) to stderr, flushes, and calls
``MPI_Abort`` on the world communicator (MPI standard §11.5: the implementation
terminates every process of the job; Hydra's mpiexec then exits non-zero, within a
second here). ``SystemExit`` passes through untouched so an argument error that every
rank detects alike can exit with its own status.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import TypeVar

from ringpipe.mpi.loader import load_mpi

T = TypeVar("T")

#: Exit status of a job aborted because a rank raised.
ABORT_STATUS = 1


def format_rank_error(rank: int, exc: BaseException) -> str:
    """``rank R: <Type>: <message>``, the first line a failing rank prints."""
    return f"rank {rank}: {type(exc).__name__}: {exc}"


def run_guarded(work: Callable[[], T]) -> T:
    """Run ``work()``; if it raises, report the error with this rank and abort the job."""
    mpi = load_mpi()
    world = mpi.COMM_WORLD
    try:
        return work()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - any failure must abort every rank
        detail = "".join(traceback.format_exception(exc))
        sys.stdout.flush()
        sys.stderr.flush()
        # Unbuffered write straight to fd 2, then a moment for the launcher to forward it:
        # MPI_Abort kills the job at once and could otherwise lose the message.
        os.write(2, f"{format_rank_error(world.Get_rank(), exc)}\n{detail}".encode())
        time.sleep(0.2)
        world.Abort(ABORT_STATUS)
        raise  # pragma: no cover - Abort does not return
