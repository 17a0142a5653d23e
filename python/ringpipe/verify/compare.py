"""How close two results are: normwise against a reference, or bit for bit between runs.

* :func:`relative_error`: ``max|got - want| / max|want|`` (absolute error when the
  reference is all zeros), one number per tensor that says how many digits agree;
  :data:`TOLERANCES` are the defaults a verification passes at (1e-10 in float64,
  1e-4 in float32);
* :func:`compare_runs`: two runs of one plan (e.g. MPI against in-process) compared
  bit for bit, loss, outputs, every gradient and every counter (:class:`RunDiff`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringpipe.runtime.result import PlanResult

__all__ = ["TOLERANCES", "RunDiff", "compare_runs", "relative_error"]

TOLERANCES = {"float64": 1e-10, "float32": 1e-4}


def relative_error(got: np.ndarray | float, want: np.ndarray | float) -> tuple[float, float]:
    """(normwise relative error, max absolute error) of ``got`` against ``want``."""
    g = np.asarray(got, dtype=np.float64)
    w = np.asarray(want, dtype=np.float64)
    if g.shape != w.shape:
        raise ValueError(f"shape {g.shape} differs from the reference's {w.shape}")
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(w))):
        return float("inf"), float("inf")
    err = float(np.max(np.abs(g - w))) if g.size else 0.0
    scale = float(np.max(np.abs(w))) if w.size else 0.0
    return (err / scale if scale > 0 else err), err


@dataclass(frozen=True)
class RunDiff:
    """How two runs of one plan differ (e.g. MPI against in-process).

    ``differing`` lists ``(tensor, max |a - b|)`` for every tensor whose bytes differ,
    largest difference first; ``counters_equal`` compares every rank's counters.
    """

    differing: tuple[tuple[str, float], ...]
    counters_equal: bool

    @property
    def bitwise(self) -> bool:
        """Every bit of loss, outputs and gradients equal."""
        return not self.differing

    @property
    def max_abs_diff(self) -> float:
        """The largest element difference over all tensors (0.0 when bitwise)."""
        return self.differing[0][1] if self.differing else 0.0

    def describe(self, limit: int = 3) -> str:
        """One line: "bitwise identical", or the first differing tensors."""
        if self.bitwise and self.counters_equal:
            return "bitwise identical, counters equal"
        parts = [f"{name} (max |diff| {diff:.3e})" for name, diff in self.differing[:limit]]
        more = len(self.differing) - limit
        text = ("differ in " + ", ".join(parts) + (f" and {more} more" if more > 0 else "")
                if self.differing else "bitwise identical")
        return text + ("" if self.counters_equal else "; counters differ")


def compare_runs(a: PlanResult, b: PlanResult) -> RunDiff:
    """Compare two results bit for bit: loss, outputs, every gradient, every counter."""
    pairs = [("loss", np.float64(a.loss), np.float64(b.loss)), ("output", a.outputs, b.outputs),
             ("aux_loss", np.float64(a.aux_loss), np.float64(b.aux_loss))]
    names = list(a.grads) + [n for n in b.grads if n not in a.grads]
    differing = []
    for name, x, y in pairs + [(n, a.grads.get(n), b.grads.get(n)) for n in names]:
        if x is None or y is None or np.shape(x) != np.shape(y):
            differing.append((name, float("inf")))
            continue
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype != y.dtype or x.tobytes() != y.tobytes():
            diff = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) \
                if x.size else 0.0
            differing.append((name, diff if diff == diff else float("inf")))
    differing.sort(key=lambda item: -item[1])
    return RunDiff(tuple(differing), a.counters == b.counters)
