"""Timing primitives for calibration: best-of-n wall-clock times within a budget.

A measurement is the *minimum* over repetitions after one warm-up call: on a shared
machine, noise only ever adds time, so the minimum is the estimate closest to the
undisturbed cost (the convention of ``timeit`` and of nccl-tests' ``-w``/``-n``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ringpipe.validation import check_int


@dataclass(frozen=True)
class Budget:
    """How hard to try per measured point: at least ``min_repeats`` timed calls after
    one warm-up, more while the total stays under ``seconds``, at most ``max_repeats``."""

    seconds: float = 0.05
    min_repeats: int = 3
    max_repeats: int = 50

    def __post_init__(self) -> None:
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, (int, float)) \
                or not self.seconds > 0:
            raise ValueError(f"Budget.seconds must be a number > 0, got {self.seconds!r}")
        check_int("Budget.min_repeats", self.min_repeats)
        check_int("Budget.max_repeats", self.max_repeats, self.min_repeats)


QUICK = Budget(0.03, 3, 20)
FULL = Budget(0.25, 5, 200)


def best_time(fn: Callable[[], object], budget: Budget = QUICK) -> float:
    """Minimum seconds of ``fn()`` over the repetitions ``budget`` allows (module doc)."""
    fn()
    best = float("inf")
    spent = 0.0
    for i in range(budget.max_repeats):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        if i + 1 >= budget.min_repeats and spent >= budget.seconds:
            break
    return best
