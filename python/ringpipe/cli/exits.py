"""How the ``ringpipe`` process ends when the user or the shell ends it first.

* **Ctrl-C at any moment.** Inside :func:`ringpipe.cli.main` a Ctrl-C is a
  KeyboardInterrupt that ``main`` turns into ``error: interrupted`` and exit 130 (an
  MPI launcher on the way stops its job first). Outside it, while the command line's
  own modules are imported and while the interpreter shuts down, there is no ``try``
  to catch it, so :func:`exit_on_interrupt` handles SIGINT instead: it writes the same
  line straight to fd 2 and ``os._exit(130)`` s, without a traceback. The command
  line installs it first thing (:func:`install_early`, before any import that takes
  time; the heavy ones, NumPy and Numba, happen inside ``main``), hands SIGINT back to
  Python's KeyboardInterrupt (:func:`restore_default`) for the command itself, and
  installs it again when the program is done. A Ctrl-C that lands in Numba's own
  Python code (its compiler, or a helper its compiled code calls back) is raised a few
  milliseconds later, once the program is back in its own code
  (:meth:`InterruptWatch._interrupt`): raised inside Numba it could crash the process.
* **A closed stdout** (``ringpipe ... >&-``): Python then sets ``sys.stdout`` to None,
  and the first ``print`` failed with ``AttributeError``. :func:`guard_stdout` puts
  ``/dev/null`` on fd 1 (so that no file the command opens is given fd 1 by accident)
  and a :class:`ClosedStdout` in ``sys.stdout`` that raises :class:`StdoutClosed` on
  the first write: one line on stderr, exit 141, the status of a closed stdout.
  :func:`require_stdout` refuses up front what cannot run without one (``mpiexec``).
* **A closed pipe** (``ringpipe ... | head -1``) is a BrokenPipeError, handled by
  ``main``: exit 141, quietly.
"""

from __future__ import annotations

import os  # this module is imported before anything slow: os, signal and sys only
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_INTERRUPTED", "RETRY_SECONDS", "ClosedStdout",
           "InterruptWatch",
           "StdoutClosed", "exit_on_interrupt", "guard_stdout", "install_early", "require_stdout",
           "restore_default"]

#: Exit statuses besides 0 (ok), 1 (failed check) and 2 (bad arguments).
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def exit_on_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGINT outside ``main``: ``error: interrupted`` on fd 2, exit 130, nothing else
    (no traceback, no cleanup that could itself be interrupted)."""
    try:
        os.write(2, b"error: interrupted\n")
    except OSError:
        pass
    os._exit(EXIT_INTERRUPTED)


def _set(handler: object) -> None:
    try:
        signal.signal(signal.SIGINT, handler)  # type: ignore[arg-type]
    except ValueError:  # not the main thread: the handler stays as it is
        pass


def install_early() -> None:
    """Handle SIGINT with :func:`exit_on_interrupt` (main thread only, and only while
    Python's default handler or an :class:`InterruptWatch` is in place: a program that
    set its own keeps it)."""
    current = signal.getsignal(signal.SIGINT)
    if current is signal.default_int_handler or isinstance(current, InterruptWatch):
        _set(exit_on_interrupt)


def restore_default() -> None:
    """Give SIGINT back to Python's KeyboardInterrupt if :func:`install_early` or an
    :class:`InterruptWatch` took it."""
    current = signal.getsignal(signal.SIGINT)
    if current is exit_on_interrupt or isinstance(current, InterruptWatch):
        _set(signal.default_int_handler)


#: Seconds between tries to deliver a Ctrl-C that landed in Numba's code.
RETRY_SECONDS = 0.005


def _numba_frame(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs Numba's own code, or this thread holds Numba's compiler
    lock (compiling, or loading from its cache); False when Numba is not loaded."""
    lock_module = sys.modules.get("numba.core.compiler_lock")
    if lock_module is None:
        return False
    if lock_module.global_compiler_lock.is_locked():
        return True
    return frame is not None and f"{os.sep}numba{os.sep}" in frame.f_code.co_filename


def _set_alarm(handler: object) -> None:
    """Arm SIGALRM to call ``handler`` in :data:`RETRY_SECONDS`, or disarm it (None)."""
    if not hasattr(signal, "setitimer"):
        return
    if handler is None:
        if signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, None):
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
        return
    signal.signal(signal.SIGALRM, handler)  # type: ignore[arg-type]
    signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)


class InterruptWatch:
    """SIGINT as Python's KeyboardInterrupt, remembering that it came. A Ctrl-C that
    lands inside a C extension's import does not surface as KeyboardInterrupt: NumPy's
    reports ``ImportError: ... PyCapsule_Import could not import module "datetime"``;
    :func:`ringpipe.cli.main` still reads it as an interrupt (exit 130) when
    :attr:`seen`."""

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.seen = True
        self._interrupt(frame)

    def _interrupt(self, frame: FrameType | None) -> None:
        """Raise KeyboardInterrupt here, unless ``frame`` is Numba's own code: then try
        again :data:`RETRY_SECONDS` later (SIGALRM), until the program is back in its
        own code.

        Numba's compiled code calls back into Python (``serialize._numba_unpickle`` for
        its constants), and Numba's compiler and cache loader run as Python; an
        exception raised in either can leave a NULL where compiled code expects an
        object. On the development VM, ``ringpipe schedule zb-v -p 32 -m 2048``
        interrupted 0.4–0.55 s after start crashed with SIGSEGV in 3–4 runs of 100,
        every time with the signal landing in ``_numba_unpickle`` under the validator's
        compiled loop.
        """
        if not _numba_frame(frame) or not hasattr(signal, "setitimer"):
            _set_alarm(None)
            raise KeyboardInterrupt
        _set_alarm(self._retry)

    def _retry(self, signum: int, frame: FrameType | None) -> None:
        self._interrupt(frame)

    @classmethod
    def install(cls) -> InterruptWatch:
        """A new watch, handling SIGINT in place of Python's default handler or
        :func:`exit_on_interrupt` (a program that set its own handler keeps it, and the
        watch then never sees anything)."""
        watch = cls()
        current = signal.getsignal(signal.SIGINT)
        if current in (signal.default_int_handler, exit_on_interrupt) \
                or isinstance(current, InterruptWatch):
            _set(watch)
        return watch


class StdoutClosed(OSError):
    """A command wrote to a stdout that was closed when ``ringpipe`` started."""

    def __init__(self) -> None:
        super().__init__("stdout is closed (>&-); give the command a stdout, e.g. "
                         "> FILE or > /dev/null")

    def __str__(self) -> str:
        return str(self.args[0])


class ClosedStdout:
    """``sys.stdout`` of a process started with fd 1 closed: a write raises
    :class:`StdoutClosed`; a flush (the interpreter's, at exit) does nothing."""

    encoding = "utf-8"
    errors = "strict"

    def write(self, text: str) -> int:
        raise StdoutClosed()

    def writelines(self, lines: object) -> None:
        raise StdoutClosed()

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise StdoutClosed()


def guard_stdout() -> None:
    """When this process started with fd 1 closed (``sys.stdout`` is None), occupy fd 1
    with ``/dev/null`` and put a :class:`ClosedStdout` in ``sys.stdout``."""
    if sys.stdout is not None:
        return
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        if fd != 1:
            os.dup2(fd, 1)
            os.close(fd)
    except OSError:
        pass
    sys.stdout = ClosedStdout()  # type: ignore[assignment]


def require_stdout() -> None:
    """Raise :class:`StdoutClosed` when stdout was closed (:func:`guard_stdout`)."""
    if isinstance(sys.stdout, ClosedStdout):
        raise StdoutClosed()
