"""Calibration of one device: GEMM throughput over shapes, memory bandwidth, call overhead.

* **GEMM curve.** C = A·B for every (M, N, K) of a grid, with NumPy's BLAS on the CPU
  or CuPy (cuBLAS) on a GPU, in the plan's dtype; each point is the best of a few
  timed calls (:func:`ringpipe.measure.timer.sustained_time`), fitted by
  :func:`ringpipe.cost.hardware.gemm_curve.fit_gemm_curve`.
* **Memory bandwidth** (STREAM's "copy" kernel, McCalpin 1995): bytes read plus bytes
  written per second by ``dst[:] = src`` on arrays far larger than the caches. On the
  CPU every core copies its own slice at once (NumPy releases the GIL while copying),
  so the figure is the all-core bandwidth.
* **Operator bandwidth curve**: bytes moved per second by one elementwise operation
  (``z = x * y``: two reads and a fresh output) on one thread, for working sets from
  L2-cache to DRAM size: the model's memory-bound operations run on arrays of every
  size; a cache-resident one moves several times the all-core DRAM figure, and a
  fresh output of a few hundred KiB pays page faults on first touch.
* **Transcendental rate**: seconds per element of ``tanh``/``exp`` (GeLU, softmax),
  which are compute-bound.
* **Fresh memory**: seconds per byte of the first write to freshly mapped memory (the
  kernel's minor page fault: map and zero a page) beyond an ordinary write. A step
  allocates its activations and gradients anew and the allocator returns them to the
  kernel when the step ends, so a step pays this per byte it holds at its peak; the
  probes above reuse their buffers and never do.
* **Per-call overhead**: what one array operation costs beyond its arithmetic, the
  Python and dispatch cost of one NumPy call with the model's glue around it (a kernel
  launch on a GPU). It is measured on the model's own operators at the smallest shape
  (one transformer block of width 2 on 2 tokens: forward, input gradient and weight
  gradient, where the arithmetic is negligible) and divided by the number of array
  operations :func:`ringpipe.cost.executable.numpy_ops.stage_ops` counts for that block.

Compute is timed in CPU time of the calling thread (:func:`ringpipe.measure.timer.
cpu_time`) on the CPU, in wall time on a GPU.
"""

from __future__ import annotations

import itertools
import mmap
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ringpipe.cost.executable.numpy_ops import ops_calls, stage_ops
from ringpipe.cost.hardware.gemm_curve import GemmCurve, fit_gemm_curve
from ringpipe.measure.timer import Budget, cpu_time, per_call, sustained_time
from ringpipe.model import blocks as B
from ringpipe.model.config import ModelConfig
from ringpipe.model.params import init_params

#: Operand pool per GEMM shape: larger than the last-level cache of the machines we run on.
COLD_BYTES = 48 << 20
QUICK_SIZES = (16, 96, 384)
FULL_SIZES = (8, 32, 128, 512, 1024)


@dataclass(frozen=True)
class GemmMeasurement:
    """Measured GEMM times of one dtype and the curve fitted through them."""

    dtype: str
    shapes: tuple[tuple[int, int, int], ...]
    seconds: tuple[float, ...]
    curve: GemmCurve

    @property
    def best_flops(self) -> float:
        """The highest FLOP/s measured on the grid."""
        return max(2.0 * m * n * k / t for (m, n, k), t in zip(self.shapes, self.seconds,
                                                                 strict=True))


def _sync(xp: ModuleType) -> Callable[[], None]:
    if xp is np:
        return lambda: None
    return lambda: xp.cuda.Stream.null.synchronize()


def measure_gemm(xp: ModuleType, dtype: str, sizes: Sequence[int],
                 budget: Budget) -> GemmMeasurement:
    """Time C = A[M×K]·B[K×N] for every (M, N, K) in ``sizes``³ and fit the curve.

    Operands and results rotate through up to 64 disjoint slices of one random buffer
    of :data:`COLD_BYTES` (the results through a second one), so each call reads A and
    B and writes C out of the caches, as a model's GEMMs do: their operands were
    written long before, and the allocator hands each product memory that the step has
    not touched for a while. (Writing C to the same few hot pages every call, as a
    bare ``a @ b`` loop does, made the small-M shapes look 2–2.5× faster than they ran
    inside a step on the development VM.) The fit separates the fixed cost of a call
    (:mod:`ringpipe.cost.hardware.gemm_curve`)."""
    sync = _sync(xp)
    timer = cpu_time if xp is np else sustained_time
    itemsize = np.dtype(dtype).itemsize
    big = max(sizes) ** 2
    elements = max(COLD_BYTES // itemsize, 4 * big)
    source = xp.asarray(np.random.default_rng(0).standard_normal(elements).astype(dtype))
    results = xp.zeros(elements, dtype=dtype)
    shapes, seconds = [], []
    for m in sizes:
        for n in sizes:
            for k in sizes:
                each = m * k + k * n
                copies = max(2, min(64, source.size // each, results.size // (m * n)))
                pool = [(source[i * each:i * each + m * k].reshape(m, k),
                         source[i * each + m * k:(i + 1) * each].reshape(k, n),
                         results[i * m * n:(i + 1) * m * n].reshape(m, n))
                        for i in range(copies)]
                turn = itertools.cycle(pool)

                def run(turn: Any = turn) -> None:
                    a, b, c = next(turn)
                    xp.matmul(a, b, out=c)
                    sync()

                shapes.append((m, n, k))
                seconds.append(timer(run, budget))
    return GemmMeasurement(dtype, tuple(shapes), tuple(seconds),
                           fit_gemm_curve(shapes, seconds))


def measure_bandwidth(xp: ModuleType, nbytes: int, budget: Budget,
                      workers: int | None = None) -> float:
    """All-core copy bandwidth, bytes moved (read + written) per second."""
    n = max(1, nbytes // 8)
    src = xp.ones(n, dtype=np.float64)
    dst = xp.empty_like(src)
    sync = _sync(xp)
    if xp is not np:
        def gpu_copy() -> None:
            dst[...] = src
            sync()
        return 2.0 * src.nbytes / sustained_time(gpu_copy, budget)
    workers = workers or os.cpu_count() or 1
    bounds = np.linspace(0, n, workers + 1).astype(int)
    slices = [slice(bounds[i], bounds[i + 1]) for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        def copy() -> None:
            list(pool.map(lambda s: np.copyto(dst[s], src[s]), slices))
        return 2.0 * src.nbytes / sustained_time(copy, budget)


OP_BYTES = (1 << 15, 1 << 18, 1 << 21, 1 << 24)


def measure_op_bandwidth(xp: ModuleType, sizes: Sequence[int],
                         budget: Budget) -> list[tuple[int, float]]:
    """(bytes one operation moves, bytes/s) of a chain ``u = x*y; v = u*x; w = v*y``
    on arrays of ``size / 3`` bytes: each operation reads two arrays and writes a fresh
    one, as the model's operations do, so the cost of its new temporaries is in the
    figure (page faults too, unless it runs under the runtimes' heap policy,
    :mod:`ringpipe.kernels.heap`, as ``ringpipe calibrate`` does)."""
    sync = _sync(xp)
    timer = cpu_time if xp is np else sustained_time
    out = []
    for nbytes in sizes:
        n = max(1, nbytes // 24)
        x, y = xp.ones(n), xp.ones(n)

        def chain(x: Any = x, y: Any = y) -> None:
            u = x * y
            v = u * x
            w = v * y
            del u, v, w
            sync()

        out.append((24 * n, 3 * 24.0 * n / timer(chain, budget)))
    return out


def measure_transcendental(xp: ModuleType, budget: Budget) -> float:
    """Seconds per element of ``tanh`` and ``exp`` (their mean) on 64 Ki elements:
    these are compute-bound (a polynomial per element), not memory-bound."""
    x = xp.linspace(-2.0, 2.0, 1 << 16)
    sync = _sync(xp)
    timer = cpu_time if xp is np else sustained_time
    t = timer(lambda: (xp.tanh(x), xp.exp(x), sync()), budget)
    return t / (2 * x.size)


FRESH_BYTES = 4 << 20
FRESH_REPEATS = 7


def measure_fresh_memory(nbytes: int = FRESH_BYTES, repeats: int = FRESH_REPEATS) -> float:
    """Seconds per byte of first-touching fresh memory (module docstring): a new
    anonymous mapping of ``nbytes`` is filled once (every page faults in) and then again
    (no faults); the CPU-time difference (``time.thread_time``: user and system time)
    over ``nbytes``, the median of ``repeats`` mappings. Host memory only."""
    out = []
    for _ in range(repeats):
        with mmap.mmap(-1, nbytes) as region:
            a = np.frombuffer(region, dtype=np.float64)
            faulting = per_call(lambda a=a: a.fill(1.0), clock=time.thread_time)
            resident = per_call(lambda a=a: a.fill(2.0), clock=time.thread_time)
            del a
        out.append((faulting - resident) / nbytes)
    return max(0.0, statistics.median(out))


def measure_call_overhead(xp: ModuleType, budget: Budget) -> float:
    """Seconds of one array operation beyond its arithmetic (module docstring)."""
    cfg = ModelConfig(layers=1, hidden=2, heads=1, seq=2, ffn=2)
    shards = [{k: xp.asarray(v) for k, v in init_params(cfg, 0).items()}]
    x = [xp.asarray(np.linspace(-1.0, 1.0, 4).reshape(2, 2))]
    sync = _sync(xp)

    def no_reduce(bufs: list) -> None:
        del bufs

    def probe() -> None:
        ys, caches = B.block_forward(cfg, 0, shards, x, no_reduce, 1, 1)
        jobs: list[list] = [[]]
        B.block_backward_input(cfg, 0, shards, caches, ys, no_reduce, jobs)
        B.run_weight_jobs(cfg, jobs[0])
        sync()

    ops = stage_ops(cfg, 1, 1, False, False, 1)
    calls = sum(ops_calls(o) for o in (ops.forward, ops.backward_input, ops.backward_weight))
    t = cpu_time(probe, budget) if xp is np else sustained_time(probe, budget)
    return t / calls
