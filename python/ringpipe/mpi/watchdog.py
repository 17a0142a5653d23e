"""A rank-side watchdog: abort the job at a deadline, and die with the launcher.

Two ways an MPI job outlives its purpose, neither of which the fault guard
(:mod:`ringpipe.mpi.guard`) sees, because no rank raises:

* **a stopped or wedged rank** (SIGSTOP, a deadlock, a lost message): its peers wait in
  a receive forever. Every rank runs a daemon thread that, ``timeout`` seconds after it
  started, prints ``rank R: timed out after T s (--timeout T); aborting the job`` and
  calls ``MPI_Abort`` on the world communicator. One rank's abort ends the whole job
  (MPI standard §11.5; Hydra kills every rank, stopped ones included, as SIGKILL needs
  no cooperation). Should ``MPI_Abort`` itself hang, the rank ``os._exit``\\ s
  :data:`ABORT_GRACE` seconds later.
* **a launcher that died** (SIGKILL on ``ringpipe verify --backend mpi``): the launcher
  puts ``<pid>@<host>`` in the environment (``RINGPIPE_LAUNCHER_PID``, see
  :mod:`ringpipe.mpi.launch`; the rank's program reads it, :mod:`ringpipe.environment`,
  and hands it to :meth:`Watchdog.start`); on that host the same thread polls the pid every
  :data:`POLL_SECONDS` and ``os._exit``\\ s the rank when it is gone, so no rank is left
  reparented to init (ranks on other nodes skip this check; mpiexec's parent-death
  signal ends their proxies' connection instead).

The thread holds no MPI state but the communicator; :meth:`Watchdog.stop` ends it
before ``MPI_Finalize``. mpi4py initialises MPI with ``MPI_THREAD_MULTIPLE``, so the
thread may call ``MPI_Abort`` while the main thread is inside a blocking call.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ringpipe.environment import check_timeout

#: Seconds between two checks of the deadline and the launcher.
POLL_SECONDS = 0.5
#: Seconds ``MPI_Abort`` gets before the rank exits on its own.
ABORT_GRACE = 10.0
#: Exit status of a rank the watchdog ends.
WATCHDOG_STATUS = 1


def launcher_id() -> str:
    """``<pid>@<host>`` of this process: the launcher's value of ``RINGPIPE_LAUNCHER_PID``."""
    return f"{os.getpid()}@{socket.gethostname()}"


def _local_launcher(text: str) -> int | None:
    """The launcher's pid if ``text`` (``<pid>@<host>``) names a process on this host;
    None otherwise (unset, malformed, or a rank started on another node)."""
    pid, _, host = text.partition("@")
    if not pid.isdigit() or int(pid) <= 1 or host != socket.gethostname():
        return None
    return int(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _say(text: str) -> None:
    os.write(2, (text + "\n").encode())


@dataclass
class Watchdog:
    """The watchdog thread of one rank (module docstring); start with :meth:`start`."""

    rank: int
    timeout: float
    launcher_pid: int | None
    comm: Any
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def start(cls, comm: Any, timeout: float,  # noqa: ANN401 - an mpi4py communicator
              launcher: str = "") -> Watchdog:
        """Start the thread for ``comm``'s rank; ``timeout`` 0 means no deadline;
        ``launcher``: ``RINGPIPE_LAUNCHER_PID``'s value (``<pid>@<host>``), "" for none."""
        pid = _local_launcher(launcher)
        dog = cls(comm.Get_rank(), check_timeout("--timeout", timeout), pid, comm)
        dog._thread = threading.Thread(target=dog._watch, name="ringpipe-watchdog",
                                       daemon=True)
        dog._thread.start()
        return dog

    def stop(self) -> None:
        """End the thread (call before the job finalizes MPI)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        deadline = time.monotonic() + self.timeout if self.timeout else None
        while not self._stop.wait(POLL_SECONDS):
            if self.launcher_pid is not None and not _alive(self.launcher_pid):
                _say(f"rank {self.rank}: the launcher (pid {self.launcher_pid}) is gone; "
                     "exiting")
                os._exit(WATCHDOG_STATUS)
            if deadline is not None and time.monotonic() >= deadline:
                _say(f"rank {self.rank}: timed out after {self.timeout:g} s (--timeout "
                     f"{self.timeout:g}); aborting the job")
                threading.Timer(ABORT_GRACE, os._exit, (WATCHDOG_STATUS,)).start()
                self.comm.Abort(WATCHDOG_STATUS)
                return
