"""Out-of-sample accuracy: predict published runs the model was not fitted on.

    python -m ringpipe.cost.published.validate          # Markdown tables and the summary

For each table of :mod:`ringpipe.cost.published.training_runs` (the rows are data
files in ``ringpipe/cost/published/data/``, each naming its source):

* **step-time error**: (predicted − measured) / measured seconds per iteration, and its
  mean absolute value (MAE);
* **rank correlation** (BLOOM splits, one cluster): Spearman's ρ between predicted and
  measured throughput (sequences per second) over the splits that ran;
* **memory**: whether the splits that ran are predicted to fit (with the default
  headroom) and the ones that ran out of memory are predicted not to;
* **Llama 3 405B**: its production layout under today's default recipe (recomputation
  chosen as the planner would: the lightest that fits) and its predicted model TFLOP/s
  per GPU next to the published one.

The only fitted constant (η_max) comes from Megatron-LM SC'21 Table 1
(:mod:`ringpipe.cost.published.megatron`); nothing here feeds back into it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ringpipe.cost.hardware.cluster import GB, GIB, Cluster, Link, cluster_preset
from ringpipe.cost.published.training_runs import (
    BLOOM_SPLITS,
    KORTHIKANTI,
    PublishedRun,
    llama3_runs,
)
from ringpipe.cost.training.memory import DEFAULT_HEADROOM_GIB
from ringpipe.cost.training.prediction import Config, StepPrediction
from ringpipe.cost.training.search import SearchSpace, search
from ringpipe.cost.training.spec import TrainingSpec
from ringpipe.cost.training.step_time import StepModel
from ringpipe.mesh import Mesh


@dataclass(frozen=True)
class Checked:
    """A published run and ringpipe's prediction for it."""

    run: PublishedRun
    prediction: StepPrediction

    @property
    def error(self) -> float | None:
        """(predicted − measured) / measured step time; None for an OOM run."""
        if self.run.step_s is None:
            return None
        return self.prediction.step_time / self.run.step_s - 1

    @property
    def memory_agrees(self) -> bool:
        """Predicted fit equals what happened (ran: fits; OOM: does not)."""
        return self.prediction.fits == (self.run.step_s is not None)


def cluster_for(run: PublishedRun) -> Cluster:
    """The preset the run names, resized, with its own inter-node numbers if given."""
    c = cluster_preset(run.cluster, run.nodes)
    if run.inter_gbs is not None:
        c = replace(c, inter=Link(run.inter_gbs * GB, c.inter.latency),
                    nic_bandwidth=None if run.nic_gbs is None else run.nic_gbs * GB)
    return c


def predict_run(run: PublishedRun, recompute: str | None = None,
                headroom_gib: float = DEFAULT_HEADROOM_GIB) -> StepPrediction:
    """ringpipe's prediction of ``run`` (``recompute`` overrides the run's)."""
    training = TrainingSpec(run.global_batch, run.microbatch, run.dtype,
                            recompute or run.recompute, run.recipe)
    step = StepModel(run.model, training, cluster_for(run), headroom=headroom_gib * GIB)
    config = Config(Mesh(dp=run.dp, pp=run.pp, tp=run.tp), run.schedule, run.microbatch,
                    None, recompute or run.recompute)
    return step.predict(config)


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (ties get their average rank)."""
    def ranks(x: list[float]) -> np.ndarray:
        arr = np.asarray(x, dtype=float)
        order = np.argsort(arr, kind="stable")
        r = np.empty(len(arr))
        r[order] = np.arange(len(arr), dtype=float)
        for value in np.unique(arr):
            same = arr == value
            r[same] = r[same].mean()
        return r
    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def check(runs: tuple[PublishedRun, ...]) -> list[Checked]:
    """Predict every run."""
    return [Checked(run, predict_run(run)) for run in runs]


def mae(checked: list[Checked]) -> float:
    """Mean absolute step-time error over the runs that ran."""
    errs = [abs(c.error) for c in checked if c.error is not None]
    return float(np.mean(errs))


def bloom_rank_correlation(checked: list[Checked], source: str | None = None) -> float:
    """Spearman ρ of predicted vs measured sequences/s over the BLOOM splits that ran
    (only those of table ``source`` when given)."""
    ran = [c for c in checked if c.run.step_s is not None
           and (source is None or c.run.table == source)]
    return spearman([c.run.global_batch / c.prediction.step_time for c in ran],
                    [c.run.global_batch / c.run.step_s for c in ran])


def llama3() -> list[tuple[PublishedRun, StepPrediction, float]]:
    """Llama 3 405B's layout (tp, pp, dp and micro-batch 1 pinned) as ``ringpipe plan``
    completes it under the default recipe and headroom: the best schedule, and the
    lightest recomputation that fits; with the published TFLOP/s."""
    out = []
    for run, tflops in llama3_runs():
        training = TrainingSpec(run.global_batch, run.microbatch, run.dtype, None, run.recipe)
        report = search(run.model, training, cluster_for(run),
                      SearchSpace(tp=run.tp, pp=run.pp, dp=run.dp), compare_unpinned=False)
        out.append((run, report.best, tflops))
    return out


def _table(title: str, checked: list[Checked]) -> list[str]:
    lines = [f"### {title}", "", "| model | TP | PP | DP | mb | batch | recompute | "
             "measured s/it | predicted s/it | error | predicted GiB | fits |",
             "|" + " --- |" * 12]
    for c in checked:
        r, p = c.run, c.prediction
        measured = "OOM" if r.step_s is None else f"{r.step_s:.2f}"
        err = "" if c.error is None else f"{c.error * 100:+.1f}%"
        lines.append(f"| {r.model.name} | {r.tp} | {r.pp} | {r.dp} | {r.microbatch} | "
                     f"{r.global_batch} | {r.recompute} | {measured} | {p.step_time:.2f} | "
                     f"{err} | {p.memory.total / GIB:.1f} | {'yes' if p.fits else 'no'} |")
    return lines


def report() -> str:
    """Every table and the summary, as Markdown."""
    bloom, kort = check(BLOOM_SPLITS), check(KORTHIKANTI)
    lines = _table("BLOOM-181B splits on 48 × 8 A100 (BigScience, 2022-02-25)", bloom)
    tweak = [c for c in bloom if c.run.table == "Tweaking TP"]
    lines += ["", f"BLOOM, all {len(bloom)} splits: step-time MAE {mae(bloom):.1%}, "
              f"Spearman ρ (throughput) {bloom_rank_correlation(bloom):.2f}, memory verdict "
              f"right for {sum(c.memory_agrees for c in bloom)}/{len(bloom)}.",
              f"BLOOM, the {len(tweak)}-split 'Tweaking TP' table alone: step-time MAE "
              f"{mae(tweak):.1%}, Spearman ρ {bloom_rank_correlation(bloom, 'Tweaking TP'):.2f}"
              f", memory verdict right for {sum(c.memory_agrees for c in tweak)}/{len(tweak)}.",
              ""]
    lines += _table("Korthikanti et al. 2022: full recompute vs SP + selective", kort)
    lines += ["", f"Korthikanti: step-time MAE {mae(kort):.1%}", "",
              "### Llama 3 405B (TP8 × PP16, seq 8192, batch 2048, default recipe)", "",
              "| GPUs | DP | schedule | recompute | fits | predicted GiB | predicted model "
              "TFLOP/s | published TFLOP/s | error |", "|" + " --- |" * 9]
    for run, pred, tflops in llama3():
        sched = pred.config.schedule + (f" v{pred.config.chunks}" if pred.config.chunks > 1
                                        else "")
        lines.append(f"| {run.nodes * 8} | {run.dp} | {sched} | {pred.config.recompute} | "
                     f"{'yes' if pred.fits else 'no'} | {pred.memory.total / GIB:.1f} | "
                     f"{pred.model_tflops_per_gpu:.0f} | {tflops:.0f} | "
                     f"{(pred.model_tflops_per_gpu / tflops - 1) * 100:+.1f}% |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
