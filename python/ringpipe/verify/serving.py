"""Prove continuous batching computes what one device computes, request by request.

:func:`verify_serving` serves a :class:`~ringpipe.plan.serving.ServingPlan` on in-process
ranks and runs the single-request greedy reference :func:`~ringpipe.model.generate.generate`
on each request alone: whatever shared its iterations (prompt chunks, other requests'
decodes, blocks another request used before), every request's tokens must be identical
and its logits agree normwise to 1e-10 in float64 (1e-4 in float32).

The command line's description of such a run is :mod:`ringpipe.cli.args.serving`; the
MPI ranks' job is :mod:`ringpipe.cli.ranks.verify_serving`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringpipe.limits import DEFAULT_LIMITS, Limits
from ringpipe.model.generate import generate
from ringpipe.plan.serving import ServingPlan
from ringpipe.runtime.batching.inproc import ServingResult, run_inprocess_serving
from ringpipe.verify.compare import TOLERANCES

__all__ = ["ServingReport", "compare_serving", "verify_serving"]


@dataclass(frozen=True)
class ServingReport:
    """Served requests against each one's reference."""

    ok: bool
    tokens_equal: bool
    max_rel_error: float
    tolerance: float
    mismatched: tuple[int, ...]
    result: ServingResult

    def as_json(self, plan: ServingPlan) -> dict[str, object]:
        """The ``ringpipe verify --inference --requests N --json`` document."""
        return {"ok": self.ok, "tokens_equal": self.tokens_equal,
                "max_rel_error": self.max_rel_error, "tolerance": self.tolerance,
                "mismatched_requests": list(self.mismatched), **batching_summary(plan),
                "tokens": [t.tolist() for t in self.result.tokens],
                "kv_cache_bytes": [c.kv_cache_bytes for c in self.result.counters],
                "allreduce_calls": [c.allreduce_calls["tp"] for c in self.result.counters],
                "bytes_sent": [c.bytes_sent for c in self.result.counters]}

    def format(self, plan: ServingPlan) -> str:
        """The human-readable report."""
        s = batching_summary(plan)
        lines = [f"{plan}",
                 f"ok: {self.ok}  tokens_equal: {self.tokens_equal}  max_rel_error: "
                 f"{self.max_rel_error:.3e} (tolerance {self.tolerance:g})",
                 f"iterations: {s['iterations']} ({s['mixed_iterations']} with a prompt chunk "
                 f"beside decodes); most requests in one iteration: {s['peak_batch']}; "
                 f"requests that waited for KV blocks: {s['waited_for_blocks']}"]
        if self.mismatched:
            lines.append(f"requests whose tokens differ: {list(self.mismatched)}")
        lines.append("rank (d,p,t)  kv_cache_bytes  tp_allreduces  pp_bytes_sent")
        for c in self.result.counters:
            lines.append(f"{c.rank:4d} ({c.dp},{c.pp},{c.tp})  {c.kv_cache_bytes:14d}  "
                         f"{c.allreduce_calls['tp']:13d}  {c.bytes_sent['pp']:13d}")
        return "\n".join(lines)


def batching_summary(plan: ServingPlan) -> dict[str, int]:
    """How much the batches mixed: iterations, those with a prompt chunk beside decodes,
    the largest batch and the requests that waited for KV blocks."""
    its = [t.iteration for trace in plan.traces for t in trace.iterations]
    mixed = sum(1 for it in its if {s.decode for s in it.segments} == {True, False})
    return {"iterations": len(its), "mixed_iterations": mixed,
            "peak_batch": max(len(it.segments) for it in its),
            "waited_for_blocks": sum(r.waited_for_blocks for t in plan.traces
                                     for r in t.requests)}


def compare_serving(plan: ServingPlan, result: ServingResult, params: dict,
                    prompts: dict[int, np.ndarray],
                    limits: Limits = DEFAULT_LIMITS) -> ServingReport:
    """``result`` (from any runtime) against each request's single-device reference."""
    tol = TOLERANCES[plan.config.dtype]
    worst, bad = 0.0, []
    for r in plan.requests:
        ref = generate(plan.config, params, np.asarray(prompts[r.id])[None], r.output_len,
                       limits=limits)
        if not np.array_equal(result.tokens[r.id], ref.tokens[0]):
            bad.append(r.id)
        scale = float(np.max(np.abs(ref.logits[0]))) or 1.0
        worst = max(worst, float(np.max(np.abs(result.logits[r.id] - ref.logits[0]))) / scale)
    return ServingReport(not bad and worst <= tol, not bad, worst, tol, tuple(bad), result)


def verify_serving(plan: ServingPlan, params: dict, prompts: dict[int, np.ndarray],
                   backend: str = "numba", limits: Limits = DEFAULT_LIMITS) -> ServingReport:
    """Serve ``plan`` on in-process ranks and compare each request with the reference."""
    return compare_serving(plan, run_inprocess_serving(plan, params, prompts, backend), params,
                           prompts, limits)
