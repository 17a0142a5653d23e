"""Prove a plan computes what one device computes: plan vs :mod:`ringpipe.model.reference`.

:func:`verify_plan` runs the plan on in-process ranks and the single-device reference
with the same parameters and the full batch, then compares the loss, the outputs and
every gradient. The error of an array is normwise: ``max|plan - ref| / max|ref|`` (an
all-zero reference compares absolute error), so one number per tensor says how many
digits agree. Defaults: 1e-10 in float64, 1e-4 in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringpipe.model.config import ModelConfig
from ringpipe.model.params import init_params
from ringpipe.model.reference import reference_forward_backward
from ringpipe.plan.training import Batch, Plan, PlanResult
from ringpipe.verify.compare import TOLERANCES, relative_error


@dataclass(frozen=True)
class VerifyReport:
    """Errors of a plan run against the reference, and the plan's counters."""

    ok: bool
    tolerance: float
    loss: float
    reference_loss: float
    errors: dict[str, float]  # "loss", "output", ("aux_loss",) then one per parameter
    abs_errors: dict[str, float]
    result: PlanResult
    reference_aux_loss: float = 0.0

    def __repr__(self) -> str:  # the arrays of ``result`` would print ~100 KB
        return (f"VerifyReport(ok={self.ok}, max_rel_error={self.max_rel_error:.3e}, "
                f"tolerance={self.tolerance:g}, tensors={len(self.errors)})")

    @property
    def max_rel_error(self) -> float:
        """The largest error over loss, output and gradients."""
        return max(self.errors.values())

    def as_json(self) -> dict[str, object]:
        """The ``ringpipe verify --json`` document."""
        result = self.result
        mesh = result.mesh
        degrees = {} if mesh is None else {
            axis: getattr(mesh, axis) for axis in ("dp", "pp", "cp", "tp", "ep", "etp", "edp")}
        sent: dict[str, int] = {}
        for c in result.counters:
            for group, n in c.bytes_sent.items():
                sent[group] = sent.get(group, 0) + n
        return {"ok": self.ok, "max_rel_error": self.max_rel_error, "loss": self.loss,
                "reference_loss": self.reference_loss, "aux_loss": result.aux_loss,
                "reference_aux_loss": self.reference_aux_loss, "errors": self.errors,
                "mesh": degrees, "bytes_sent": sent,
                "peak_activations": result.peak_activations,
                "allreduce_calls": result.allreduce_calls}


def random_batch(config: ModelConfig, batch_size: int, seed: int) -> Batch:
    """A reproducible batch: token ids / class ids, or standard-normal dense tensors."""
    rng = np.random.default_rng(seed)
    shape = (batch_size, config.seq)
    if config.vocab:
        return Batch(rng.integers(0, config.vocab, shape), rng.integers(0, config.vocab, shape))
    dense = (*shape, config.hidden)
    dt = config.np_dtype
    return Batch(rng.standard_normal(dense).astype(dt), rng.standard_normal(dense).astype(dt))


def verify_plan(plan: Plan, params: dict[str, np.ndarray] | None = None,
                batch: Batch | None = None, backend: str = "numba", seed: int = 0,
                tolerance: float | None = None) -> VerifyReport:
    """Run ``plan`` and the reference and compare them (see the module docstring).

    ``params`` default to :func:`init_params(config, seed)`; ``batch`` to
    :func:`random_batch` with ``dp · microbatches · 2`` sequences.
    """
    cfg = plan.config
    if params is None:
        params = init_params(cfg, seed)
    if batch is None:
        batch = random_batch(cfg, plan.mesh.dp * plan.microbatches * 2, seed + 1)
    result = plan.run(params, batch, backend=backend)
    return compare_to_reference(plan, result, params, batch, tolerance)


def compare_to_reference(plan: Plan, result: PlanResult, params: dict[str, np.ndarray],
                         batch: Batch | tuple[np.ndarray, np.ndarray],
                         tolerance: float | None = None) -> VerifyReport:
    """The errors of a plan's ``result`` (from any runtime) against the reference."""
    cfg = plan.config
    tol = TOLERANCES[cfg.dtype] if tolerance is None else tolerance
    ref = reference_forward_backward(cfg, params, batch[0], batch[1])
    errors: dict[str, float] = {}
    abs_errors: dict[str, float] = {}
    pairs = [("loss", result.loss, ref.loss), ("output", result.outputs, ref.output)]
    if cfg.is_moe and cfg.aux_loss_coeff:  # the MoE load-balancing loss, reported apart
        pairs.append(("aux_loss", result.aux_loss, ref.aux_loss))
    pairs += [(name, result.grads[name], ref.grads[name]) for name in ref.grads]
    for name, got, want in pairs:
        errors[name], abs_errors[name] = relative_error(got, want)
    ok = all(e <= tol for e in errors.values()) and set(result.grads) == set(ref.grads)
    return VerifyReport(ok, tol, result.loss, ref.loss, errors, abs_errors, result,
                        ref.aux_loss)


def format_report(plan: Plan, report: VerifyReport, worst: int | None = 8) -> str:
    """The verdict with loss, output and the ``worst`` largest gradient errors (largest
    first); ``worst=None`` lists every tensor in forward order."""
    lines = [f"# {plan!r}", f"# loss {report.loss:.17g}  reference {report.reference_loss:.17g}",
             f"{'tensor':<32} {'max abs err':>12} {'rel err':>12}"]
    shown = list(report.errors)
    head = 3 if "aux_loss" in report.errors else 2
    if worst is not None and len(shown) - head > worst:
        grads = sorted(shown[head:], key=lambda n: -report.errors[n])[:worst]
        shown = shown[:head] + grads
        lines[-1] += (f"   (loss, output and the {worst} largest of "
                      f"{len(report.errors) - head} gradient errors; --verbose lists all)")
    for name in shown:
        rel = report.errors[name]
        lines.append(f"{name:<32} {report.abs_errors[name]:>12.3e} {rel:>12.3e}")
    verdict = "OK" if report.ok else "MISMATCH"
    lines.append(f"# {verdict}: max relative error {report.max_rel_error:.3e} "
                 f"(tolerance {report.tolerance:g}); peak activations per pipeline rank "
                 f"{report.result.peak_activations}; all-reduce ops "
                 f"{report.result.allreduce_calls}")
    return "\n".join(lines)
