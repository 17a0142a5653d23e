"""Out-of-sample accuracy for context parallelism, MoE / expert parallelism and FP8.

    python -m ringpipe.cost.published.parallel_report     # Markdown tables and summary

For every run of :mod:`ringpipe.cost.published.parallel_runs`, the run's layout is pinned
(tp, pp, dp, cp, ep and, where published, the micro-batch and v) and ``ringpipe plan``'s
search completes it under the default recipe and headroom: the lightest recomputation
that fits, and v or the micro-batch where unpublished. The prediction is compared with
what was measured:

* tokens per second per GPU (global batch · sequence / (step time · GPUs)) where the
  source gives it — independent of how the source counts FLOPs;
* model TFLOP/s per GPU otherwise, counted as the sources count them (the full
  attention term, :func:`ringpipe.cost.training.spec.executed_flops`).

error = predicted / measured − 1. Nothing here is fitted: the only fitted constants
(η_max and d0) come from Megatron-LM SC'21 Table 1, a dense A100 table; the FP8 rate, the
grouped-GEMM efficiency (1) and the load imbalance (1: the Megatron-Bridge MoE benchmarks
force-balance their experts) are stated assumptions, not tuned on these rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringpipe.cost.hardware.cluster import GIB
from ringpipe.cost.published.parallel_runs import (
    ParallelRun,
    bridge_runs,
    deepseek_report_run,
    long_context_runs,
    nemo_long_sequence_runs,
)
from ringpipe.cost.training.prediction import StepPrediction
from ringpipe.cost.training.search import FitsNowhere, SearchSpace, search
from ringpipe.cost.training.spec import TrainingSpec

__all__ = ["FEATURES", "ParallelCheck", "by_feature", "check_runs", "report"]


@dataclass(frozen=True)
class ParallelCheck:
    """A run and ringpipe's prediction (None: nothing at that layout fits)."""

    run: ParallelRun
    prediction: StepPrediction | None
    smallest_gib: float | None = None

    @property
    def predicted_tokens(self) -> float | None:
        """Predicted tokens per second per GPU."""
        p, r = self.prediction, self.run
        if p is None:
            return None
        return r.global_batch * r.model.seq / (p.step_time * r.mesh.world)

    @property
    def measured(self) -> tuple[str, float]:
        """(what was measured, its value): tokens/s/GPU where published, else TFLOP/s."""
        if self.run.tokens_per_gpu_s is not None:
            return "tokens/s/GPU", self.run.tokens_per_gpu_s
        assert self.run.tflops_per_gpu is not None
        return "TFLOP/s/GPU", self.run.tflops_per_gpu

    @property
    def predicted(self) -> float | None:
        """The prediction of what was measured."""
        if self.prediction is None:
            return None
        what, _ = self.measured
        return self.predicted_tokens if what == "tokens/s/GPU" else \
            self.prediction.model_tflops_per_gpu

    @property
    def error(self) -> float | None:
        """predicted / measured − 1 (None when nothing fits)."""
        return None if self.predicted is None else self.predicted / self.measured[1] - 1


def predict(run: ParallelRun) -> ParallelCheck:
    """ringpipe's prediction of ``run`` at its pinned layout (module docstring)."""
    m = run.mesh
    training = TrainingSpec(run.global_batch, run.microbatch, run.dtype)
    space = SearchSpace(tp=m.tp, pp=m.pp, dp=m.dp, cp=m.cp, ep=m.ep, etp=m.etp,
                        schedule=run.schedule, chunks=run.chunks, allow_uneven=True)
    try:
        found = search(run.model, training, run.cluster, space, compare_unpinned=False,
                       placement=run.placement)
    except FitsNowhere as exc:
        least = min(p.memory.total for p in exc.report.candidates)
        return ParallelCheck(run, None, least / GIB)
    return ParallelCheck(run, found.best)


def check_runs() -> dict[str, list[ParallelCheck]]:
    """Every table's runs, predicted."""
    return {"Llama 3 405B, long-context stage (CP16, BF16)":
            [predict(r) for r in long_context_runs()],
            "NeMo long sequences: Llama 2 7B with CP, FP8":
            [predict(r) for r in nemo_long_sequence_runs()],
            "Megatron-Bridge on DGX-H100: CP, EP and FP8":
            [predict(r) for r in bridge_runs()],
            "DeepSeek-V3 pre-training (EP64, FP8, H800)": [predict(deepseek_report_run())]}


def _row(c: ParallelCheck) -> str:
    r, p = c.run, c.prediction
    m = r.mesh
    layout = f"TP{m.tp} CP{m.cp} PP{m.pp} DP{m.dp}" + (f" EP{m.ep}" if m.ep > 1 else "")
    what, measured = c.measured
    if p is None:
        return (f"| {r.label} | {layout} | {r.dtype} | — | does not fit "
                f"({c.smallest_gib:.0f} GiB) | {measured:.0f} {what} | — | — |")
    sched = p.config.schedule + (f" v{p.config.chunks}" if p.config.chunks > 1 else "")
    parts = ", ".join(f"{k} {v:.2f}" for k, v in p.parts().items()
                      if k in ("cp_comm_exposed", "ep_comm", "bubble") and v > 0)
    return (f"| {r.label} | {layout} | {r.dtype} | {sched} mb{p.config.microbatch_size} "
            f"{p.config.recompute} | {p.memory.total / GIB:.1f} GiB; {parts or '-'} | "
            f"{measured:.0f} {what} | {c.predicted:.0f} | {c.error * 100:+.1f}% |")


#: The summary's groups of runs by what they exercise: (name, which runs).
FEATURES = (("CP > 1", lambda r: r.mesh.cp > 1),
            ("MoE with EP > 1", lambda r: r.mesh.ep > 1),
            ("dense FP8", lambda r: r.dtype == "fp8" and not r.model.is_moe),
            ("dense FP8 with a published step time (tokens/s)",
             lambda r: r.dtype == "fp8" and not r.model.is_moe
             and r.tokens_per_gpu_s is not None))


def by_feature(checks: list[ParallelCheck]) -> list[tuple[str, int, float]]:
    """(feature, runs, mean absolute error) for each of :data:`FEATURES` (priced runs)."""
    out = []
    for name, selects in FEATURES:
        errs = [abs(c.error) for c in checks if c.error is not None and selects(c.run)]
        if errs:
            out.append((name, len(errs), float(np.mean(errs))))
    return out


def report() -> str:
    """Every table and the summary, as Markdown."""
    lines: list[str] = []
    errors: list[float] = []
    tables = check_runs()
    for title, checks in tables.items():
        lines += [f"### {title}", "", f"Source: {checks[0].run.source}.", "",
                  "| run | layout | dtype | priced as | memory; exposed s | measured | "
                  "predicted | error |", "|" + " --- |" * 8]
        lines += [_row(c) for c in checks]
        errs = [c.error for c in checks if c.error is not None]
        errors += errs
        if errs:
            lines += ["", f"MAE {np.mean(np.abs(errs)):.1%} over {len(errs)} run(s) (mean "
                      f"signed error {np.mean(errs):+.1%}).", ""]
    lines.append(f"All {len(errors)} runs: MAE {np.mean(np.abs(errors)):.1%}, mean signed "
                 f"error {np.mean(errors):+.1%}.")
    every = [c for checks in tables.values() for c in checks]
    lines.append("By feature (MAE): " + "; ".join(
        f"{name} {mae:.1%} ({n} runs)" for name, n, mae in by_feature(every)) + ".")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
