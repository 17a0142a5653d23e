"""The measured GEMM grid itself, interpolated: what the executable-plan predictor prices a
GEMM with when a calibration holds one.

``ringpipe calibrate`` times C[M×N] = A[M×K]·B[K×N] on a grid of sizes per axis (every
(M, N, K) of ``sizes³``) and fits the saturating curve of
:mod:`ringpipe.cost.hardware.gemm_curve` through it. Four parameters cannot follow every
BLAS: OpenBLAS, for one, takes a different kernel path for a thin M (a handful of rows)
against a deep K, and there the fitted curve is 1.5–2× too fast, exactly at the shapes a
small model's layers run (T = b·s rows against h and 4h columns). Like the nccl-tests
size tables the planner prefers to an α-β fit (:mod:`ringpipe.measure.nccltests`), the
measured grid is kept and preferred inside its range:

* at a grid point the compute rate is R = 2·M·N·K / (t − t₀), t the measured seconds of
  one call and t₀ the per-call overhead the predictor adds back to every call (floored
  at a tenth of t, so that a point faster than the overhead still has a rate);
* between grid points, log R is interpolated linearly in (log M, log N, log K)
  (trilinear: exact for a power law in each dimension, which a roofline is piecewise);
* beyond the grid, each dimension is clamped to the grid's end and the rate there is
  scaled by the fitted curve's ratio rate(M, N, K) / rate(clamped): the curve carries
  the trend outside the measured range, the grid its level.

So the predicted time of a measured shape is the measured time; the curve remains what
a hand-written cluster file (or a grid with holes) is priced with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ringpipe.cost.hardware.gemm_curve import GemmCurve

__all__ = ["GemmTable"]

#: A point's compute time is at least this fraction of its measured time.
MIN_COMPUTE_FRACTION = 0.1


@dataclass(frozen=True)
class GemmTable:
    """Measured GEMM rates on a full grid (module docstring): ``axes`` the sizes of M, N
    and K, ``log_rates`` log(FLOP/s) in C order over ``axes``, ``curve`` the fit used
    beyond the grid."""

    axes: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    log_rates: tuple[float, ...]
    curve: GemmCurve

    def __post_init__(self) -> None:
        if len(self.axes) != 3 or any(len(a) < 1 or list(a) != sorted(set(a)) or a[0] < 1
                                      for a in self.axes):
            raise ValueError("GemmTable.axes must be three increasing tuples of sizes >= 1")
        if len(self.log_rates) != math.prod(len(a) for a in self.axes):
            raise ValueError("GemmTable.log_rates must have one entry per grid point")
        if not all(math.isfinite(r) for r in self.log_rates):
            raise ValueError("GemmTable.log_rates must be finite")

    @classmethod
    def from_measurements(cls, shapes: Sequence[Sequence[int]], seconds: Sequence[float],
                          overhead: float, curve: GemmCurve) -> GemmTable | None:
        """The table of measured ``shapes`` and their ``seconds`` per call, less the
        per-call ``overhead``; None unless the shapes are exactly one full grid (every
        combination of the sizes seen on each axis, each once) of positive sizes and
        times."""
        if len(shapes) != len(seconds) or not shapes:
            return None
        points = {}
        for shape, t in zip(shapes, seconds, strict=True):
            dims = tuple(int(x) for x in shape)
            if len(dims) != 3 or min(dims) < 1 or not (t > 0 and math.isfinite(t)) \
                    or dims in points:
                return None
            points[dims] = float(t)
        axes = tuple(tuple(sorted({d[i] for d in points})) for i in range(3))
        if len(points) != math.prod(len(a) for a in axes):
            return None
        logs = []
        for m in axes[0]:
            for n in axes[1]:
                for k in axes[2]:
                    t = points[(m, n, k)]
                    compute = max(t - overhead, MIN_COMPUTE_FRACTION * t)
                    logs.append(math.log(2.0 * m * n * k / compute))
        return cls(axes, tuple(logs), curve)  # type: ignore[arg-type]

    def rate(self, m: float, n: float, k: float) -> float:
        """FLOP/s of one M×N×K GEMM (module docstring)."""
        if min(m, n, k) <= 0:
            raise ValueError(f"GEMM dimensions must be > 0, got ({m}, {n}, {k})")
        dims = (m, n, k)
        clamped = tuple(min(max(float(d), a[0]), a[-1]) for d, a in zip(dims, self.axes,
                                                                        strict=True))
        grid = np.asarray(self.log_rates).reshape([len(a) for a in self.axes])
        for d, a in zip(clamped, self.axes, strict=True):  # M, then N, then K
            grid = _interpolate_first(grid, math.log(d), [math.log(x) for x in a])
        trend = self.curve.rate(*dims) / self.curve.rate(*clamped)
        return float(math.exp(grid.item())) * trend

    def time(self, m: float, n: float, k: float, batch: int = 1) -> float:
        """Seconds of ``batch`` M×N×K GEMMs (compute only, no call overhead)."""
        if min(m, n, k) <= 0:
            return 0.0
        return 2.0 * batch * m * n * k / self.rate(m, n, k)


def _interpolate_first(grid: np.ndarray, x: float, xs: list[float]) -> np.ndarray:
    """``grid`` with its first axis collapsed to the linear interpolation at ``x``
    (inside [xs[0], xs[-1]])."""
    if len(xs) == 1:
        return grid[0]
    hi = min(max(int(np.searchsorted(xs, x, side="right")), 1), len(xs) - 1)
    w = (x - xs[hi - 1]) / (xs[hi] - xs[hi - 1])
    return (1.0 - w) * grid[hi - 1] + w * grid[hi]
