"""Start MPI jobs on this machine: find ``mpiexec`` and run ``python -m ...`` under it.

The ``mpich`` wheel from PyPI ships Hydra's ``mpiexec`` next to the Python executable
of the environment it is installed into, so :func:`find_mpiexec` looks there first
(``Path(sys.executable).parent / "mpiexec"``), then on ``PATH``.

:func:`mpiexec_environment` makes a local job start reliably, also as root and with
more ranks than cores (CI machines have 2):

* ``HYDRA_LAUNCHER=fork``: Hydra starts every rank on this host directly (no ssh);
  Hydra never refuses root nor oversubscription;
* ``MPIR_CVAR_POLLS_BEFORE_YIELD``: MPICH busy-polls while it waits and yields the
  core every N polls (default 1000); with more ranks than cores a waiting rank then
  steals time from the rank it waits for, so oversubscribed jobs yield sooner;
* ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS``: cores / ranks
  (at least 1: :meth:`ringpipe.kernels.threads.ThreadPolicy.fair_share`, the rule the
  in-process runtime applies too), so ranks' BLAS threads do not oversubscribe the
  machine;
* ``OMPI_ALLOW_RUN_AS_ROOT*`` and ``OMPI_MCA_rmaps_base_oversubscribe``: the same
  for an Open MPI ``mpiexec`` found on PATH (ignored by Hydra).

Variables the caller already set are never overridden, except
``RINGPIPE_LAUNCHER_PID``, always ``<this process's pid>@<this host>``.

No orphans. :func:`launch` starts ``mpiexec`` in its own session and process group, and
ends that whole group (mpiexec, its proxies, every rank) whenever it stops waiting for
it: when mpiexec has exited (whatever it left behind, e.g. after it died of SIGPIPE on a
closed pipe), on its ``timeout`` (the launcher's deadline, which ``ringpipe verify
--backend mpi`` sets a little past the ranks' ``--timeout``, so that a job whose ranks
cannot even abort still ends), on any exception (Ctrl-C's KeyboardInterrupt included),
and on SIGTERM or SIGHUP, which it handles while it waits (then it exits with status
128 + the signal, as a shell reports a killed process). A SIGKILL cannot be handled,
so two further safeguards cover it: ``mpiexec`` gets a parent-death signal (Linux
``prctl(PR_SET_PDEATHSIG, SIGKILL)``, through ctypes), and every rank's watchdog
(:mod:`ringpipe.mpi.watchdog`) polls ``RINGPIPE_LAUNCHER_PID`` and exits when the
launcher is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType

from ringpipe.environment import LAUNCHER_VAR, inherited_environment
from ringpipe.kernels.threads import ThreadPolicy, available_cores
from ringpipe.mpi.watchdog import launcher_id
from ringpipe.validation import check_int

#: Signals that make :func:`launch` end its job and exit (SIGINT raises KeyboardInterrupt).
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def find_mpiexec() -> str:
    """Path of ``mpiexec``: next to the running Python first, else on PATH.

    Raises FileNotFoundError saying how to install it.
    """
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("mpiexec")
    if found is None:
        raise FileNotFoundError("mpiexec not found next to the Python executable "
                                f"({beside.parent}) nor on PATH; install the MPI extra: "
                                "pip install 'ringpipe[mpi]'")
    return found


#: Hostfile flags of the two mpiexec implementations :func:`mpiexec_flavour` tells apart.
HOSTFILE_FLAGS = {"hydra": "-f", "openmpi": "--hostfile"}


def mpiexec_flavour(mpiexec: str | None = None) -> str:
    """``"openmpi"`` when ``mpiexec --version`` names Open MPI (or its runtimes OpenRTE,
    PRRTE), else ``"hydra"`` (MPICH's, which the ``mpich`` wheel ships): the two read
    hostfiles by different rules (:mod:`ringpipe.mpi.placement`)."""
    try:
        done = subprocess.run([mpiexec or find_mpiexec(), "--version"], capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OSError(f"cannot run mpiexec --version: {exc}") from None
    text = done.stdout + done.stderr
    return "openmpi" if any(k in text for k in ("Open MPI", "OpenRTE", "PRRTE")) else "hydra"


def mpiexec_environment(nprocs: int, base: Mapping[str, str] | None = None,
                        local: bool = True) -> dict[str, str]:
    """The environment for a local job of ``nprocs`` ranks (see the module docstring).
    With ``local=False`` (a hostfile names other machines) Hydra keeps its own launcher
    (ssh, or whatever ``HYDRA_LAUNCHER`` says) instead of forking every rank here."""
    env = inherited_environment() if base is None else dict(base)
    cores = available_cores()
    threads = str(ThreadPolicy.fair_share(max(1, nprocs), cores).blas)
    defaults = {
        "HYDRA_LAUNCHER": "fork",
        "MPIR_CVAR_POLLS_BEFORE_YIELD": "10" if nprocs > cores else "1000",
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_rmaps_base_oversubscribe": "1",
    }
    if not local:
        del defaults["HYDRA_LAUNCHER"]
    for key, value in defaults.items():
        env.setdefault(key, value)
    env[LAUNCHER_VAR] = launcher_id()
    return env


def _check_nprocs(nprocs: object) -> int:
    return check_int("nprocs", nprocs, 1)


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to SIGKILL the child when this process dies
    (``prctl(PR_SET_PDEATHSIG)``); None where that is not available."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):  # pragma: no cover - not glibc/musl
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)

    return preexec


class _Terminated(BaseException):
    """SIGTERM or SIGHUP arrived while :func:`launch` waited."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated(signum)


@contextlib.contextmanager
def _terminate_on_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into :class:`_Terminated` (main thread only; elsewhere the
    handlers cannot be set and the defaults stay)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_terminated) for sig in FORWARDED_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def mpiexec_command(nprocs: int, argv: Sequence[str], python: str | None = None,
                    mpiexec_args: Sequence[str] = ()) -> list[str]:
    """``[mpiexec, *mpiexec_args, -n, nprocs, python, *argv]``: each rank runs
    ``python *argv``; ``mpiexec_args`` go to mpiexec itself (e.g. ``-f hostfile``)."""
    _check_nprocs(nprocs)
    return [find_mpiexec(), *mpiexec_args, "-n", str(nprocs), python or sys.executable, *argv]


def launch(nprocs: int, argv: Sequence[str], *, timeout: float | None = None,
           capture: bool = False, env: Mapping[str, str] | None = None,
           cwd: str | os.PathLike[str] | None = None, mpiexec_args: Sequence[str] = (),
           local: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``python *argv`` on ``nprocs`` local MPI ranks and wait for the job.

    The job gets its own process group; if it outlives ``timeout`` seconds the whole
    group (mpiexec, its proxies and every rank) is killed and
    :class:`subprocess.TimeoutExpired` is raised. With ``capture`` stdout and stderr are
    returned as text, else they go to this process's.
    """
    cmd = mpiexec_command(nprocs, argv, mpiexec_args=mpiexec_args)
    pipe = subprocess.PIPE if capture else None
    with _terminate_on_signals():
        proc = subprocess.Popen(cmd, stdout=pipe, stderr=pipe, text=True, cwd=cwd,
                                env=mpiexec_environment(nprocs, env, local),
                                start_new_session=True,
                                preexec_fn=_die_with_parent())  # noqa: PLW1509
        try:
            out, err = proc.communicate(timeout=timeout)
            _kill_group(proc)  # mpiexec is done: a proxy or rank it left is an orphan
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(cmd, timeout or 0.0, out, err) from None
        except _Terminated as exc:
            _kill_group(proc)
            proc.wait()
            name = signal.Signals(exc.signum).name
            print(f"ringpipe: {name} received; stopped the MPI job (pid {proc.pid})",
                  file=sys.stderr)
            raise SystemExit(128 + exc.signum) from None
        except BaseException:  # e.g. KeyboardInterrupt: never leave ranks behind
            _kill_group(proc)
            proc.wait()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
