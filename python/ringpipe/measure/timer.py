"""The one timer: every measurement in ringpipe times through these primitives.

* :func:`per_call`: seconds per call of a loop of ``calls`` calls (the MPI timings
  wrap it in barriers and take the slowest rank);
* :func:`best_of` and :func:`best_of_each`: the fastest of several samples, the
  functions taking turns in every round so that they see the same machine state (on a
  shared machine noise only adds time; the fastest sample is the least disturbed);
* :func:`wall_and_cpu`: one call's wall time and CPU time;
* :func:`sustained_time` / :func:`cpu_time`: calibration's seconds per call (below);
* :func:`cpu_share`: the share of a core a busy thread gets now.

**Sustained time** (calibration). A point is the *median of three block means*: after
one warm-up call, ``fn`` runs in three blocks of n calls each (n chosen so a block takes
about a third of the budget), and each block's time per call is its total divided by n.
A mean over a block, unlike the fastest single call, includes what a long run also meets
on a shared machine (time slices lost to other processes, cache and frequency effects),
which is what a step of a plan experiences; the median of three discards one disturbed
block. This is how nccl-tests times collectives (average over ``-n`` iterations after
``-w`` warm-ups).

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


def per_call(fn: Callable[[], object], calls: int = 1,
             clock: Callable[[], float] = time.perf_counter,
             sync: Callable[[], object] | None = None) -> float:
    """Seconds per call of ``calls`` back-to-back calls of ``fn`` on ``clock``. With
    ``sync`` (e.g. an MPI barrier) the clock starts after one ``sync()`` and stops after
    another, so that every process times the same span."""
    if sync is not None:
        sync()
    t0 = clock()
    for _ in range(calls):
        fn()
    if sync is not None:
        sync()
    return (clock() - t0) / calls


def best_of(fn: Callable[[], object], samples: int, calls: int = 1) -> float:
    """The fastest of ``samples`` samples of :func:`per_call` (seconds per call)."""
    return best_of_each([fn], samples, calls)[0]


def best_of_each(fns: list[Callable[[], object]], rounds: int,
                 calls: int = 1) -> list[float]:
    """The fastest sample of each ``fn`` (seconds per call, ``calls`` calls a sample),
    the functions taking turns in every round so that they see the same machine state."""
    check_int("rounds", rounds)
    check_int("calls", calls)
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], per_call(fn, calls))
    return best


def wall_and_cpu(fn: Callable[[], object],
                 cpu_clock: Callable[[], float] = time.process_time) -> tuple[float, float]:
    """(wall seconds, CPU seconds on ``cpu_clock``) of one call of ``fn``: the process's
    CPU time by default, ``time.thread_time`` for the calling thread's alone."""
    wall, cpu = time.perf_counter(), cpu_clock()
    fn()
    return time.perf_counter() - wall, cpu_clock() - cpu


def sustained_time(fn: Callable[[], object], budget: Budget = QUICK,
                   clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per call of ``fn`` on ``clock`` (module docstring)."""
    first = max(per_call(fn, 1, clock), 1e-7)
    calls = max(1, min(budget.max_calls, int(budget.seconds / BLOCKS / first)))
    return statistics.median(per_call(fn, calls, clock) for _ in range(BLOCKS))


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
