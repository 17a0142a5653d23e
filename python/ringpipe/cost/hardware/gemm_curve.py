"""A measured GEMM efficiency curve: FLOP/s of C[M×N] = A[M×K]·B[K×N] as a function of shape.

The curve is a saturating roofline (the shape of every BLAS/cuBLAS throughput plot:
small dimensions pay a fixed cost per row, column and inner step, large ones approach
an asymptote)::

    rate(M, N, K) = P∞ · efficiency(M, N, K),
    efficiency(M, N, K) = 1 / (1 + M0/M + N0/N + K0/K).

P∞ is the asymptotic FLOP/s; M0, N0, K0 are the sizes at which each dimension alone
halves the rate. The time of one GEMM is 2·M·N·K / rate (the operator-level cost model
of :mod:`ringpipe.cost.hardware.gpu` takes this rate as its ``rate`` argument).

**Fit.** A measured call also pays a fixed cost t0 (dispatch), so with
1/rate = c0 + c1/M + c2/N + c3/K the time of one call is linear in five unknowns:

    t = t0 + c0·2MNK + c1·2NK + c2·2MK + c3·2MN,
    P∞ = 1/c0,  M0 = c1/c0,  N0 = c2/c0,  K0 = c3/c0,

so :func:`fit_gemm_curve` solves it by linear least squares on the *relative* error
(each row divided by the measured time), dropping any term whose coefficient comes out
negative and refitting (a negative size or cost has no meaning). t0 is kept as
``GemmCurve.fixed`` for reference; :meth:`GemmCurve.time` excludes it (the cost model
charges a per-call overhead separately). Measurements are
``ringpipe calibrate``'s (:mod:`ringpipe.measure.calibrate.compute`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ringpipe.validation import check_real


@dataclass(frozen=True)
class GemmCurve:
    """rate(M, N, K) = peak_flops / (1 + m0/M + n0/N + k0/K) (module docstring)."""

    peak_flops: float
    m0: float = 0.0
    n0: float = 0.0
    k0: float = 0.0
    fixed: float = 0.0

    def __post_init__(self) -> None:
        check_real("GemmCurve.peak_flops", self.peak_flops, positive=True)
        for name in ("m0", "n0", "k0", "fixed"):
            check_real(f"GemmCurve.{name}", getattr(self, name), 0.0)

    def efficiency(self, m: float, n: float, k: float) -> float:
        """Fraction of ``peak_flops`` a GEMM of this shape reaches (in (0, 1])."""
        if min(m, n, k) <= 0:
            raise ValueError(f"GEMM dimensions must be > 0, got ({m}, {n}, {k})")
        return 1.0 / (1.0 + self.m0 / m + self.n0 / n + self.k0 / k)

    def rate(self, m: float, n: float, k: float) -> float:
        """FLOP/s of one M×N×K GEMM."""
        return self.peak_flops * self.efficiency(m, n, k)

    def time(self, m: float, n: float, k: float, batch: int = 1) -> float:
        """Seconds of ``batch`` M×N×K GEMMs (compute only, no call overhead)."""
        if min(m, n, k) <= 0:
            return 0.0
        return 2.0 * batch * m * n * k / self.rate(m, n, k)


def fit_gemm_curve(shapes: Sequence[tuple[int, int, int]],
                   seconds: Sequence[float]) -> GemmCurve:
    """Least-squares :class:`GemmCurve` through measured GEMM times (module docstring).

    ``shapes[i]`` = (M, N, K) took ``seconds[i]``. Needs at least 4 points.
    """
    if len(shapes) != len(seconds):
        raise ValueError(f"shapes ({len(shapes)}) and seconds ({len(seconds)}) must have "
                         "the same length")
    if len(shapes) < 4:
        raise ValueError(f"need at least 4 measured shapes to fit, got {len(shapes)}")
    dims = np.asarray(shapes, dtype=float)
    t = np.asarray(seconds, dtype=float)
    if dims.ndim != 2 or dims.shape[1] != 3 or (dims <= 0).any():
        raise ValueError("shapes must be (M, N, K) triples of positive sizes")
    if not np.isfinite(t).all() or (t <= 0).any():
        raise ValueError("seconds must be finite and > 0")
    m, n, k = dims.T
    design = np.column_stack([np.ones(len(t)), 2 * m * n * k, 2 * n * k, 2 * m * k, 2 * m * n])
    keep = [0, 1, 2, 3, 4]
    while True:
        coef, *_ = np.linalg.lstsq(design[:, keep] / t[:, None], np.ones(len(t)), rcond=None)
        negative = [i for i, c in zip(keep, coef, strict=True) if c < 0 and i != 1]
        if not negative:
            break
        keep.remove(negative[0])
    full = dict(zip(keep, coef, strict=True))
    c0 = full.get(1, 0.0)
    if c0 <= 0:  # no asymptote: a flat curve at the best measured rate
        return GemmCurve(float((2 * dims.prod(axis=1) / t).max()))
    return GemmCurve(1.0 / c0, full.get(2, 0.0) / c0, full.get(3, 0.0) / c0,
                     full.get(4, 0.0) / c0, full.get(0, 0.0))
