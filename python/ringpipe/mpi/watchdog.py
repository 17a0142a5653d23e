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

**The deadline covers the whole job.** A rank starts its watchdog before it initialises
MPI (:meth:`Watchdog.start` with no communicator; :meth:`Watchdog.attach` hands it the
world communicator once MPI is up) and keeps it through ``MPI_Finalize``
(:meth:`Watchdog.finalize`), because a stopped peer hangs ``MPI_Init`` and the end of a
job as surely as a receive:

* ``MPI_Init`` and ``MPI_Finalize`` run holding Python's GIL (mpi4py does not release
  it there), so no Python thread can act while they block. Around them
  (:meth:`Watchdog.blocking`) the deadline is also kept by the interpreter's C-level
  timer (``faulthandler.dump_traceback_later(..., exit=True)``), which ends the rank with
  status 1 when it expires, whatever holds the GIL;
* before ``MPI_Finalize`` every rank waits for the others in an ``MPI_Barrier`` (which
  releases the GIL), so a peer stopped after its work is caught while ``MPI_Abort``
  is still allowed, and the whole job ends.

A peer stopped inside its own ``MPI_Finalize`` cannot be reached by the others (their
finalize returns without it, and a process manager waits for a stopped process: SIGTERM
does not end it); the launcher's deadline ends that job
(:func:`ringpipe.mpi.launch.launch`, set by ``ringpipe verify --backend mpi`` a few
seconds past ``--timeout``).

mpi4py initialises MPI with ``MPI_THREAD_MULTIPLE``, so the thread may call
``MPI_Abort`` while the main thread is inside a blocking call.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import socket
import threading
import time
from collections.abc import Iterator
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
    """The watchdog thread of one rank (module docstring); start with :meth:`start`.
    ``rank`` is None until a communicator is attached; ``started`` is when the deadline
    started counting (``time.monotonic()``)."""

    rank: int | None
    timeout: float
    launcher_pid: int | None
    comm: Any
    started: float = field(default_factory=time.monotonic)
    _finalizing: bool = field(default=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def start(cls, comm: Any, timeout: float,  # noqa: ANN401 - an mpi4py communicator
              launcher: str = "") -> Watchdog:
        """Start the thread for ``comm``'s rank (``comm`` None: before ``MPI_Init``, see
        :meth:`attach`); ``timeout`` 0 means no deadline; ``launcher``:
        ``RINGPIPE_LAUNCHER_PID``'s value (``<pid>@<host>``), "" for none."""
        pid = _local_launcher(launcher)
        rank = None if comm is None else comm.Get_rank()
        dog = cls(rank, check_timeout("--timeout", timeout), pid, comm)
        dog._thread = threading.Thread(target=dog._watch, name="ringpipe-watchdog",
                                       daemon=True)
        dog._thread.start()
        return dog

    def attach(self, comm: Any) -> None:  # noqa: ANN401 - an mpi4py communicator
        """The world communicator, once MPI is initialised: from now on the deadline
        aborts the job through it."""
        self.rank = comm.Get_rank()
        self.comm = comm

    def set_timeout(self, timeout: float) -> None:
        """Change the deadline to ``timeout`` seconds after :attr:`started` (the rank
        learns its ``--timeout`` only after parsing its command line)."""
        self.timeout = check_timeout("--timeout", timeout)

    def stop(self) -> None:
        """End the thread (after :meth:`finalize`, or in a process that keeps MPI)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline)."""
        if not self.timeout:
            return None
        return self.started + self.timeout - time.monotonic()

    @contextlib.contextmanager
    def blocking(self) -> Iterator[None]:
        """Keep the deadline across a call that holds the GIL (``MPI_Init``,
        ``MPI_Finalize``): the interpreter's C-level timer ends the rank (status 1) if
        the call outlives it (module docstring)."""
        left = self.remaining()
        if left is None:
            yield
            return
        with open(os.devnull, "w") as sink:  # its traceback would be noise on stderr
            faulthandler.dump_traceback_later(max(left, 0.001), exit=True, file=sink)
            try:
                yield
            finally:
                faulthandler.cancel_dump_traceback_later()

    def finalize(self, mpi: Any) -> None:  # noqa: ANN401 - the mpi4py.MPI module
        """End the job under the deadline: wait for every rank in a barrier (a peer
        stopped after its work is aborted here), then ``MPI_Finalize`` under
        :meth:`blocking`, then stop the thread."""
        try:
            if self.comm is not None and mpi.Is_initialized() and not mpi.Is_finalized():
                self.comm.Barrier()
            self._finalizing = True
            if mpi.Is_initialized() and not mpi.Is_finalized():
                with self.blocking():
                    mpi.Finalize()
        finally:
            self.stop()

    def _who(self) -> str:
        return "rank ?" if self.rank is None else f"rank {self.rank}"

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            if self.launcher_pid is not None and not _alive(self.launcher_pid):
                _say(f"{self._who()}: the launcher (pid {self.launcher_pid}) is gone; "
                     "exiting")
                os._exit(WATCHDOG_STATUS)
            left = self.remaining()
            if left is not None and left <= 0:
                self._expire()
                return

    def _expire(self) -> None:
        where = (" while starting MPI" if self.comm is None else
                 " while finalizing MPI" if self._finalizing else "")
        _say(f"{self._who()}: timed out after {self.timeout:g} s (--timeout "
             f"{self.timeout:g}){where}; aborting the job")
        if self.comm is None or self._finalizing:  # nothing to abort through: exit, and
            os._exit(WATCHDOG_STATUS)  # the process manager ends the other ranks
        threading.Timer(ABORT_GRACE, os._exit, (WATCHDOG_STATUS,)).start()
        self.comm.Abort(WATCHDOG_STATUS)
