"""Prove parallel generation computes what one device computes: greedy tokens and logits.

:func:`verify_inference` runs an :class:`~ringpipe.runtime.inference.InferencePlan` on
in-process ranks and the single-device reference :func:`~ringpipe.model.generate.generate`
on the same parameters and prompts: the greedy tokens must be identical and the logits
agree normwise (``max|plan - ref| / max|ref|``) to 1e-10 in float64 (1e-4 in float32).

The command line's description of such a run (``ringpipe verify --inference`` and its
MPI ranks) is :mod:`ringpipe.cli.args.plan`; the ranks' job is
:mod:`ringpipe.cli.ranks.verify_inference`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringpipe.limits import DEFAULT_LIMITS, Limits
from ringpipe.model.generate import generate
from ringpipe.plan.inference import InferencePlan
from ringpipe.runtime.inference import InferenceResult, run_inprocess_inference
from ringpipe.verify.compare import TOLERANCES, relative_error

__all__ = ["InferenceReport", "compare", "verify_inference"]


@dataclass(frozen=True)
class InferenceReport:
    """Parallel generation against the reference."""

    ok: bool
    tokens_equal: bool
    max_rel_error: float
    tolerance: float
    result: InferenceResult

    def as_json(self) -> dict[str, object]:
        """The ``ringpipe verify --inference --json`` document."""
        return {"ok": self.ok, "tokens_equal": self.tokens_equal,
                "max_rel_error": self.max_rel_error, "tolerance": self.tolerance,
                "tokens": self.result.tokens.tolist(),
                "kv_cache_bytes": [c.kv_cache_bytes for c in self.result.counters],
                "allreduce_calls": [c.allreduce_calls["tp"] for c in self.result.counters],
                "bytes_sent": [c.bytes_sent for c in self.result.counters]}

    def format(self, plan: InferencePlan) -> str:
        """The human-readable report."""
        lines = [f"{plan}", f"ok: {self.ok}  tokens_equal: {self.tokens_equal}  "
                 f"max_rel_error: {self.max_rel_error:.3e} (tolerance {self.tolerance:g})",
                 "rank (d,p,t)  kv_cache_bytes  tp_allreduces  pp_bytes_sent"]
        for c in self.result.counters:
            lines.append(f"{c.rank:4d} ({c.dp},{c.pp},{c.tp})  {c.kv_cache_bytes:14d}  "
                         f"{c.allreduce_calls['tp']:13d}  {c.bytes_sent['pp']:13d}")
        return "\n".join(lines)


def compare(plan: InferencePlan, result: InferenceResult, params: dict,
            prompts: np.ndarray, limits: Limits = DEFAULT_LIMITS) -> InferenceReport:
    """``result`` (from any runtime) against the single-device reference (its KV cache
    and logits within ``limits``: :func:`~ringpipe.model.generate.generate`)."""
    ref = generate(plan.config, params, prompts, plan.new_tokens, limits=limits)
    tol = TOLERANCES[plan.config.dtype]
    equal = bool(np.array_equal(result.tokens, ref.tokens))
    err, _ = relative_error(result.logits, ref.logits)
    return InferenceReport(equal and err <= tol, equal, err, tol, result)


def verify_inference(plan: InferencePlan, params: dict, prompts: np.ndarray,
                     backend: str = "numba", limits: Limits = DEFAULT_LIMITS) -> InferenceReport:
    """Run ``plan`` on in-process ranks and compare with the reference."""
    return compare(plan, run_inprocess_inference(plan, params, prompts, backend), params,
                   prompts, limits)
