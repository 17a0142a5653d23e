"""Timing helpers shared by the benchmarks (imported as ``timing``: pytest puts this
folder on ``sys.path`` when it collects ``bench_*.py``)."""

import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` wall-clock timings of ``fn()``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
