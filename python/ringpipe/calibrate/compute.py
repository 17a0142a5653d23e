"""Calibration of one device: GEMM throughput over shapes, memory bandwidth, call overhead.

* **GEMM curve.** C = A·B for every (M, N, K) of a grid, with NumPy's BLAS on the CPU
  or CuPy (cuBLAS) on a GPU, in the plan's dtype; each point is the best of a few
  timed calls (:func:`ringpipe.calibrate.timing.best_time`), fitted by
  :func:`ringpipe.cost.gemm_curve.fit_gemm_curve`.
* **Memory bandwidth** (STREAM's "copy" kernel, McCalpin 1995): bytes read plus bytes
  written per second by ``dst[:] = src`` on arrays far larger than the caches. On the
  CPU every core copies its own slice at once (NumPy releases the GIL while copying),
  so the figure is the all-core bandwidth.
* **Per-call overhead**: what one small operator costs beyond its arithmetic, the
  Python and dispatch cost of one NumPy call (a kernel launch on a GPU). It is measured
  on the model's own smallest operators (:func:`ringpipe.model.functional.norm_forward`
  and :func:`~ringpipe.model.functional.gelu_forward` on one 8-wide row, 16 array
  operations in all) and divided by their operation count.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ringpipe.calibrate.timing import Budget, best_time
from ringpipe.cost.gemm_curve import GemmCurve, fit_gemm_curve
from ringpipe.model import functional as F

#: Array operations one call of the overhead probe makes: rmsnorm forward (x*x, mean,
#: +eps, sqrt, 1/, x*rstd, *w = 7) and GeLU forward (x*x*x = 2, *a, +x, *c, tanh,
#: 0.5*x, 1+t, * = 9).
PROBE_OPERATIONS = 16

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


def measure_gemm(xp: ModuleType, dtype: str, sizes: Sequence[int], budget: Budget,
                 call_overhead: float = 0.0) -> GemmMeasurement:
    """Time A[M×K]·B[K×N] for every (M, N, K) in ``sizes``³ and fit the curve.

    ``call_overhead`` (s) is taken off each time before fitting (at most 90% of it): the
    cost model charges it per call separately, so the curve is the arithmetic's rate."""
    rng = np.random.default_rng(0)
    sync = _sync(xp)
    shapes, seconds = [], []
    for m in sizes:
        for n in sizes:
            for k in sizes:
                a = xp.asarray(rng.standard_normal((m, k)).astype(dtype))
                b = xp.asarray(rng.standard_normal((k, n)).astype(dtype))

                def run(a: Any = a, b: Any = b) -> None:
                    a @ b
                    sync()

                shapes.append((m, n, k))
                t = best_time(run, budget)
                seconds.append(max(t - call_overhead, 0.1 * t))
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
        return 2.0 * src.nbytes / best_time(gpu_copy, budget)
    workers = workers or os.cpu_count() or 1
    bounds = np.linspace(0, n, workers + 1).astype(int)
    slices = [slice(bounds[i], bounds[i + 1]) for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        def copy() -> None:
            list(pool.map(lambda s: np.copyto(dst[s], src[s]), slices))
        return 2.0 * src.nbytes / best_time(copy, budget)


def measure_call_overhead(xp: ModuleType, budget: Budget) -> float:
    """Seconds of one small array operation (module docstring)."""
    x = xp.asarray(np.linspace(-1.0, 1.0, 8).reshape(1, 8))
    w = xp.ones(8)
    sync = _sync(xp)

    def probe() -> None:
        F.norm_forward(x, w, None, "rmsnorm", 1e-5)
        F.gelu_forward(x)
        sync()

    return best_time(probe, budget) / PROBE_OPERATIONS
