"""Measurements behind ``ringpipe bench`` and ``benchmarks/bench_collectives.py``.

Every figure is a ratio against a baseline measured in the same process, the two
timed in alternation (best of several rounds each), because absolute times on a
shared machine are noise.

**The all-core memory bound** (issue 16). An all-reduce over N in-process ranks of S
bytes each must read every input once and write every output once: 2·N·S bytes. Its
bound is those bytes at the bandwidth of a parallel add (``a += b`` split into one
contiguous slice per core, each added by NumPy's vectorised ``np.add`` on its own
thread; NumPy releases the GIL inside the loop) whose two arrays hold N·S bytes in
all: the add moves 3·N·S/2 bytes per call. The single-threaded ``np.add`` bandwidth
on the same arrays is reported too, the baseline the benchmarks used before (one
thread does not saturate memory, so it is not a bound). A Numba ``prange`` loop was
tried for the parallel add and reached only 11–15 GB/s here against 35 GB/s for the
threaded ``np.add``: it under-measured the bound, so all-reduces looked faster than
memory allows. The all-core bandwidth is the faster of the parallel and the
single-threaded add in the same run, so the bound is never below what one thread
reaches.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ringpipe.collectives import all_reduce, all_reduce_init
from ringpipe.measure.timer import best_of_each, wall_and_cpu

MIB = 1 << 20


@dataclass(frozen=True)
class Row:
    """One headline figure: what, the value, its target and whether it is met.

    ``met`` is None for figures reported without a target (e.g. a replaced baseline).
    """

    measure: str
    value: float
    unit: str
    target: str
    met: bool | None
    detail: dict = field(default_factory=dict)


def at_most(measure: str, value: float, limit: float, unit: str = "x", **detail: float) -> Row:
    """A row whose target is ``value <= limit``."""
    return Row(measure, value, unit, f"<= {limit:g}{unit}", value <= limit, detail)


def at_least(measure: str, value: float, limit: float, unit: str = "x", **detail: float) -> Row:
    """A row whose target is ``value >= limit``."""
    return Row(measure, value, unit, f">= {limit:g}{unit}", value >= limit, detail)


def parallel_add(a: np.ndarray, b: np.ndarray, pool: ThreadPoolExecutor,
                 nthreads: int) -> None:
    """``a += b`` with the range split in ``nthreads`` equal contiguous slices, each
    added by ``np.add`` on a thread of ``pool``."""
    step = -(-a.size // nthreads)

    def part(t: int) -> None:
        lo, hi = t * step, min(a.size, (t + 1) * step)
        np.add(a[lo:hi], b[lo:hi], out=a[lo:hi])

    for f in [pool.submit(part, t) for t in range(nthreads)]:
        f.result()


def add_arrays(total_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 arrays of ``total_bytes`` bytes in all (pages touched; ``a += b``
    keeps them at 0)."""
    count = max(1, total_bytes // 8)
    a = np.zeros(count, np.float32)
    a.fill(0.0)
    return a, a.copy()


def add_timers(a: np.ndarray, b: np.ndarray) -> tuple[Callable[[], None], Callable[[], None]]:
    """(parallel add, single-threaded np.add) on the same arrays; each moves 3·a.nbytes."""
    threads = os.cpu_count() or 1
    pool = ThreadPoolExecutor(threads)  # threads start here, outside any timing
    parallel_add(a, b, pool, threads)
    return (lambda: parallel_add(a, b, pool, threads)), (lambda: np.add(a, b, out=a))


def last_level_cache_bytes() -> int | None:
    """The largest CPU cache of cpu0 in bytes, from Linux sysfs; None where unknown."""
    from pathlib import Path

    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = entry.read_text().strip().upper()
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes) if sizes else None


def back_to_back_calls(total_bytes: int) -> int:
    """Calls per timed sample for a working set of ``total_bytes``: enough that about
    64 MiB move, so a set that fits in the caches is timed warm, as back-to-back calls
    run (nccl-tests' iterations), whatever the measurement before it evicted. With one
    call per sample a cache-sized all-reduce starts cold after the adds, while the
    single-threaded add finds the arrays the parallel add just warmed."""
    return max(1, (64 * MIB) // max(total_bytes, 1))


def timing_buffers(ranks: int, bytes_per_rank: int) -> list[np.ndarray]:
    """float32 rank buffers of zeros, written once: repeated in-place sums stay finite
    and exact (inputs that grow each call would overflow), and every page is mapped."""
    bufs = [np.zeros(bytes_per_rank // 4, np.float32) for _ in range(ranks)]
    for b in bufs:
        b.fill(0.0)
    return bufs


@dataclass(frozen=True)
class BoundRatio:
    """An all-reduce's best time and its ratio to both baselines, from one run."""

    algorithm: str
    ranks: int
    bytes_per_rank: int
    seconds: float
    allcore_gbps: float
    np_add_gbps: float

    @property
    def allcore_bound_s(self) -> float:
        """2·N·S bytes at the all-core bandwidth."""
        return 2 * self.ranks * self.bytes_per_rank / (self.allcore_gbps * 1e9)

    @property
    def ratio_allcore(self) -> float:
        """All-reduce time / all-core bound (the figure of merit; 1.0 is the bound)."""
        return self.seconds / self.allcore_bound_s

    @property
    def ratio_np_add(self) -> float:
        """All-reduce time / the same bytes at single-threaded np.add's bandwidth."""
        return self.seconds * self.np_add_gbps * 1e9 / (2 * self.ranks * self.bytes_per_rank)


def all_reduce_vs_bound(algorithm: str, ranks: int, bytes_per_rank: int,
                        rounds: int = 7) -> BoundRatio:
    """Time an in-place numba all-reduce against both baselines (module docstring)."""
    bufs = timing_buffers(ranks, bytes_per_rank)
    a, b = add_arrays(ranks * bytes_per_rank)
    parallel, single = add_timers(a, b)
    run = lambda: all_reduce(bufs, algorithm, "numba")  # noqa: E731
    run()
    t_run, t_par, t_one = best_of_each([run, parallel, single], rounds,
                                     back_to_back_calls(ranks * bytes_per_rank))
    moved = 3 * a.nbytes
    # the bound is the fastest way seen to move those bytes: never below one thread's
    return BoundRatio(algorithm, ranks, bytes_per_rank, t_run,
                      moved / min(t_par, t_one) / 1e9, moved / t_one / 1e9)


def small_message_speedups(algorithm: str, ranks: int = 8, bytes_per_rank: int = 4096,
                           rounds: int = 5, inner: int = 200) -> tuple[float, float, float]:
    """(numpy one-shot time, numba one-shot speed-up, persistent handle speed-up)."""
    bufs = timing_buffers(ranks, bytes_per_rank)
    handle = all_reduce_init(bufs, algorithm, "numba")
    handle()
    all_reduce(bufs, algorithm, "numba")
    numpy_t, numba_t, persistent_t = best_of_each([
        lambda: all_reduce(bufs, algorithm, "numpy"),
        lambda: all_reduce(bufs, algorithm, "numba"),
        handle], rounds, inner)
    return numpy_t, numpy_t / numba_t, numpy_t / persistent_t


def out_of_place_vs_in_place(algorithm: str, ranks: int = 8, bytes_per_rank: int = 64 << 10,
                             rounds: int = 5, inner: int = 100) -> tuple[float, float]:
    """(in-place seconds, out-of-place seconds) of one numba all-reduce, timed in
    alternation (best of ``rounds`` samples of ``inner`` calls each). Out of place
    (``out=``) copies each input tile into the output in the same pass, so it moves the
    same memory and should cost about as much."""
    bufs = timing_buffers(ranks, bytes_per_rank)
    outs = [np.empty_like(b) for b in bufs]
    all_reduce(bufs, algorithm, "numba", out=outs)
    in_place, out_of_place = best_of_each([
        lambda: all_reduce(bufs, algorithm, "numba"),
        lambda: all_reduce(bufs, algorithm, "numba", out=outs)], rounds, inner)
    return in_place, out_of_place


def schedule_path_seconds(p: int, m: int, rounds: int = 3) -> float:
    """Best time of 1F1B generate + add_communication + validate + simulate."""
    from ringpipe.schedules import add_communication, one_f_one_b, simulate, validate

    def path() -> None:
        lowered = add_communication(one_f_one_b(p, m))
        simulate(lowered, execution_order=validate(lowered))

    path_small = lambda: add_communication(one_f_one_b(2, 2))  # noqa: E731
    path_small()  # compile / load the kernels' cache
    return best_of_each([path], rounds)[0]


@dataclass(frozen=True)
class PlanRatios:
    """``Plan.run`` time / reference time: wall clock and CPU time, min and median."""

    wall_min: float
    wall_median: float
    cpu_min: float
    cpu_median: float


def plan_vs_reference(layers: int, hidden: int, seq: int, batch: int, microbatches: int,
                      rounds: int) -> PlanRatios:
    """TP2×PP4 1F1B ``Plan(...).run`` against ``reference_forward_backward`` on the same
    model and batch, the two alternating for ``rounds`` rounds (as
    ``benchmarks/bench_plan.py`` does): ratios of the min and of the median times."""
    from ringpipe.mesh import Mesh
    from ringpipe.model import ModelConfig, init_params, reference_forward_backward
    from ringpipe.plan.training import Plan
    from ringpipe.verify.training import random_batch

    config = ModelConfig(layers=layers, hidden=hidden, heads=8, seq=seq, dtype="float32")
    params = init_params(config, 0)
    data = random_batch(config, batch, 1)
    plan = Plan(config, Mesh(pp=4, tp=2), schedule="1f1b", microbatches=microbatches)
    plan.run(params, data)  # compile / load the kernel cache, on both sides
    reference_forward_backward(config, params, *data)
    ref, run = [], []
    for _ in range(rounds):
        ref.append(wall_and_cpu(lambda: reference_forward_backward(config, params, *data)))
        run.append(wall_and_cpu(lambda: plan.run(params, data)))

    def ratios(i: int) -> tuple[float, float]:
        mine, base = [t[i] for t in run], [t[i] for t in ref]
        return min(mine) / min(base), statistics.median(mine) / statistics.median(base)

    return PlanRatios(*ratios(0), *ratios(1))
