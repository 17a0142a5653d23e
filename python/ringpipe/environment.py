"""The one place ringpipe reads environment variables; everything else is handed them.

The command-line programs (``ringpipe`` and the MPI ranks' ``python -m ringpipe.mpi``)
call :meth:`Environment.read` once and pass what it found down explicitly: the library
below :mod:`ringpipe.cli` never looks at ``os.environ``. The variables:

==========================  =============================================================
``RINGPIPE_LIMITS``         ``name=value,...`` raising the work limits (:class:`Limits`)
``RINGPIPE_DEBUG``          a true value (anything but empty, 0, false, no) adds Python
                            tracebacks to the one-line errors (CLI and MPI ranks)
``RINGPIPE_TIMEOUT``        the MPI jobs' default ``--timeout`` in seconds (0: none)
``RINGPIPE_LAUNCHER_PID``   ``<pid>@<host>`` of the process that started an MPI job, set
                            by :mod:`ringpipe.mpi.launch` for the ranks' watchdog
``OPENBLAS_NUM_THREADS``,   BLAS threads of this process (the first set, in that order),
``MKL_NUM_THREADS``,        recorded by ``ringpipe calibrate``
``OMP_NUM_THREADS``
==========================  =============================================================

MPI ranks inherit the launcher's environment, so they see the same values.
:func:`inherited_environment` is the copy a launcher hands to its children.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ringpipe.limits import LIMITS_VAR, Limits

__all__ = ["BLAS_THREAD_VARS", "DEBUG_VAR", "DEFAULT_TIMEOUT", "LAUNCHER_VAR", "LIMITS_VAR",
           "TIMEOUT_VAR", "Environment", "check_timeout", "inherited_environment"]

DEBUG_VAR = "RINGPIPE_DEBUG"
TIMEOUT_VAR = "RINGPIPE_TIMEOUT"
LAUNCHER_VAR = "RINGPIPE_LAUNCHER_PID"
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
#: ``--timeout`` of the MPI commands when neither the flag nor ``RINGPIPE_TIMEOUT`` is
#: given: 15 minutes, far above any default job (verify: seconds; the all-reduce sweep:
#: about a minute).
DEFAULT_TIMEOUT = 900.0


def check_timeout(name: str, value: float) -> float:
    """``value`` if it is a finite number of seconds >= 0 (0: no deadline)."""
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{name} must be a number of seconds >= 0 (0: none), got {value}")
    return float(value)


def _flag(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false", "no")


def _timeout(text: str) -> float:
    text = text.strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{TIMEOUT_VAR} must be a number of seconds, got {text!r}") from None
    return check_timeout(TIMEOUT_VAR, value)


def _blas_threads(environ: Mapping[str, str]) -> int | None:
    for var in BLAS_THREAD_VARS:
        value = environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


@dataclass(frozen=True)
class Environment:
    """What the environment asks of this process (module docstring's table).

    ``limits``: the work limits; ``debug``: tracebacks on; ``timeout``: the MPI jobs'
    default deadline (s); ``launcher``: ``RINGPIPE_LAUNCHER_PID`` ("" when unset);
    ``blas_threads``: the BLAS thread count the variables set (None: the library's own
    default, one per core).
    """

    limits: Limits = Limits()
    debug: bool = False
    timeout: float = DEFAULT_TIMEOUT
    launcher: str = ""
    blas_threads: int | None = None

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> Environment:
        """Read ``environ`` (default: this process's); ValueError naming the variable
        when one is malformed."""
        env = os.environ if environ is None else environ
        return cls(limits=Limits.parse(env.get(LIMITS_VAR, "")),
                   debug=_flag(env.get(DEBUG_VAR, "")),
                   timeout=_timeout(env.get(TIMEOUT_VAR, "")),
                   launcher=env.get(LAUNCHER_VAR, ""),
                   blas_threads=_blas_threads(env))

    @property
    def cpu_count(self) -> int:
        """Cores this machine reports (1 when unknown)."""
        return os.cpu_count() or 1


def inherited_environment() -> dict[str, str]:
    """A copy of this process's environment, for a child process to start from."""
    return dict(os.environ)
