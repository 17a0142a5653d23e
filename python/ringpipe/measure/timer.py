"""Timing primitives for calibration: sustained seconds per call, CPU time, CPU share.

A point is the *median of three block means*: after one warm-up call, ``fn`` runs in
three blocks of n calls each (n chosen so a block takes about a third of the budget),
and each block's time per call is its total divided by n. A mean over a block, unlike
the fastest single call, includes what a long run also meets on a shared machine (time
slices lost to other processes, cache and frequency effects), which is what a step of a
plan experiences; the median of three discards one disturbed block. This is how
nccl-tests times collectives (average over ``-n`` iterations after ``-w`` warm-ups).

On a machine shared with other work, wall time mixes the cost of a call with the load
of the moment. Compute is therefore calibrated in CPU time (:func:`cpu_time`), and the
load separately, as the share of a core a busy thread gets (:func:`cpu_share`); the
predictor divides CPU time by that share (:mod:`ringpipe.cost.executable.predict`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from ringpipe.validation import check_int, check_real

BLOCKS = 3


@dataclass(frozen=True)
class Budget:
    """How long to time one point: about ``seconds`` in all, each of the three blocks
    at least one call and at most ``max_calls`` calls."""

    seconds: float = 0.05
    max_calls: int = 1000

    def __post_init__(self) -> None:
        check_real("Budget.seconds", self.seconds, positive=True)
        check_int("Budget.max_calls", self.max_calls)


QUICK = Budget(0.03, 500)
FULL = Budget(0.2, 5000)


def sustained_time(fn: Callable[[], object], budget: Budget = QUICK,
                   clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per call of ``fn`` on ``clock`` (module docstring)."""
    t0 = clock()
    fn()
    first = max(clock() - t0, 1e-7)
    calls = max(1, min(budget.max_calls, int(budget.seconds / BLOCKS / first)))
    means = []
    for _ in range(BLOCKS):
        t0 = clock()
        for _ in range(calls):
            fn()
        means.append((clock() - t0) / calls)
    return statistics.median(means)


def cpu_time(fn: Callable[[], object], budget: Budget = QUICK) -> float:
    """CPU seconds per call of ``fn`` on the calling thread (``time.thread_time``): what
    the call costs when it has a core to itself, whatever else the machine runs. (A
    multi-threaded BLAS call keeps the calling thread busy for its duration, so this is
    its uncontended wall time too.)"""
    return sustained_time(fn, budget, time.thread_time)


def cpu_share(seconds: float = 0.3) -> float:
    """Fraction of one core a busy thread gets here now: thread CPU time over wall time
    of a spin loop (1.0 on an idle machine; ~C/L with L runnable threads on C cores)."""
    w0, c0 = time.perf_counter(), time.thread_time()
    while time.perf_counter() - w0 < seconds:
        pass
    return min(1.0, (time.thread_time() - c0) / (time.perf_counter() - w0))
