"""A Ctrl-C that lands in Numba's own Python code is delivered once the program is back
in its own code (:class:`ringpipe.cli.exits.InterruptWatch`).

Raised inside ``numba.core.serialize._numba_unpickle``, which compiled code calls for
its constants, a KeyboardInterrupt left a NULL in the compiled function's result tuple
and the process died with SIGSEGV (3–4 of 100 interrupted ``ringpipe schedule`` runs).
The end-to-end check is ``test_interrupt_startup.py``; these tests pin the mechanism.
"""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import pytest

pytest.importorskip("numba")
import numba.core.compiler_lock  # noqa: E402,F401 - what the watch looks for

from ringpipe.cli.exits import RETRY_SECONDS, InterruptWatch  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="POSIX timers")


def _frame(path: str) -> SimpleNamespace:
    return SimpleNamespace(f_code=SimpleNamespace(co_filename=path))


NUMBA_FILE = os.path.join(os.sep, "site-packages", "numba", "core", "serialize.py")


@pytest.fixture
def alarm_restored():
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)


def test_an_interrupt_in_numba_code_is_retried_not_raised(alarm_restored):
    watch = InterruptWatch()
    watch(signal.SIGINT, _frame(NUMBA_FILE))  # no KeyboardInterrupt here
    assert watch.seen
    assert signal.getsignal(signal.SIGALRM) == watch._retry
    assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= RETRY_SECONDS
    # still inside Numba at the retry: armed again
    signal.setitimer(signal.ITIMER_REAL, 0)
    watch._retry(signal.SIGALRM, _frame(NUMBA_FILE))
    assert signal.getitimer(signal.ITIMER_REAL)[0] > 0
    # back in the program's code: raised there, and the alarm is disarmed
    with pytest.raises(KeyboardInterrupt):
        watch._retry(signal.SIGALRM, _frame(__file__))
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL


def test_an_interrupt_elsewhere_is_raised_at_once(alarm_restored):
    watch = InterruptWatch()
    with pytest.raises(KeyboardInterrupt):
        watch(signal.SIGINT, _frame(__file__))
    with pytest.raises(KeyboardInterrupt):
        watch(signal.SIGINT, None)
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL


def test_the_retry_delivers_it_when_numba_returns(alarm_restored):
    """A real SIGALRM: the watch defers, the timer fires in this test's own frame, and
    the KeyboardInterrupt arrives here."""
    watch = InterruptWatch()
    watch(signal.SIGINT, _frame(NUMBA_FILE))
    with pytest.raises(KeyboardInterrupt):
        for _ in range(10_000_000):  # the 5 ms alarm interrupts this loop
            pass
    assert watch.seen
