"""The zero-bubble paper's schedule comparison, as the planner prices it (held-out data).

    python -m ringpipe.cost.published.zero_bubble      # Markdown tables and the summary

Qi et al. (ICLR 2024; ``data/zero_bubble_2024.csv``) ran four schedules on one cluster
(A100 SXM 80G, 8 per node, RoCE across) for four GPT-3-like models, one pipeline over
all GPUs (TP 1, DP 1), and published throughput and memory per GPU. This module wires
each row to ringpipe's objects, as the paper describes the runs:

* **model**: ``gpt_like`` with the row's layers, heads and hidden size, sequence 1024,
  learned positions, LayerNorm, GeLU, biases, dropout, tied embeddings (Megatron-LM's
  GPT defaults), vocabulary 32000 (the authors' November 2023 script uses a
  SentencePiece tokenizer, ``GPTSentencePieceTokenizer``, whose size the paper does not
  state: an assumption);
* **recipe**: that script's: fp16 mixed precision, no flash attention, no sequence
  parallelism, no recomputation (:data:`ZB_RECIPE`);
* **stages**: the paper's layout (§5.1): the first and last stages one transformer
  layer fewer than the others (``E,t*2|(t*3|)*6t*2,L`` for 22 layers on 8 GPUs); for
  1F1B-I one layer per chunk, the embedding and the loss on chunks of their own
  (``E|(t|)*22L``, v = (layers + 2) / p);
* **schedules**: 1F1B -> ``1f1b``; 1F1B-I -> ``interleaved-1f1b``; ZB-1p and ZB-2p, the
  paper's searched schedules with activation memory limited to p and 2p micro-batches of
  a stage, -> ringpipe's synthesised schedule (``synth``) with
  ``Config.activation_cap`` p and 2p.

For every cell (a model, m and micro-batch) the planner prices the cell's schedules;
the report counts how often its fastest is the measured fastest, how often it orders two
schedules as measured (every pair), and the error of its throughput and of its peak
memory per GPU against the published ones. Memory is compared in GB = 10^9 bytes, as
the column is labelled (the paper does not say). Nothing is fitted on these rows; the
one fitted constant of the training model comes from Megatron-LM SC'21 Table 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from ringpipe.cost.hardware.cluster import cluster_preset
from ringpipe.cost.published.loader import load_table
from ringpipe.cost.training.prediction import Config, StepPrediction
from ringpipe.cost.training.recipe import Recipe
from ringpipe.cost.training.spec import TrainingSpec
from ringpipe.cost.training.step_time import StepModel
from ringpipe.mesh import Mesh
from ringpipe.model.presets import gpt_like
from ringpipe.plan.layout import PipelineLayout

__all__ = ["ROWS", "ZB_RECIPE", "Cell", "ZeroBubbleRow", "cells", "main", "report"]

#: The authors' November 2023 recipe (module docstring).
ZB_RECIPE = Recipe(sequence_parallel=False, flash_attention=False,
                   distributed_optimizer=False, overlap_grad_reduce=False, fp32_grads=False)
VOCAB = 32000
SEQ = 1024
GPUS_PER_NODE = 8


@dataclass(frozen=True)
class ZeroBubbleRow:
    """A row of ``zero_bubble_2024.csv``."""

    table: str
    model: str
    layers: int
    heads: int
    hidden: int
    gpus: int
    microbatch: int
    microbatches: int
    schedule: str
    samples_per_gpu_s: float
    memory_gb: float


_TABLE = load_table("zero_bubble_2024.csv", ZeroBubbleRow)
ROWS = _TABLE.rows
SOURCE = _TABLE.source.short


def layout(row: ZeroBubbleRow) -> PipelineLayout:
    """The row's stages (module docstring)."""
    p, layers = row.gpus, row.layers
    if row.schedule == "1F1B-I":
        return PipelineLayout.from_counts([0] + [1] * layers + [0])
    k = (layers + 2) // p
    return PipelineLayout.from_counts([k - 1] + [k] * (p - 2) + [k - 1])


def config(row: ZeroBubbleRow) -> Config:
    """ringpipe's configuration for the row (module docstring)."""
    mesh = Mesh(dp=1, pp=row.gpus, tp=1)
    stages = layout(row)
    if row.schedule == "1F1B":
        return Config(mesh, "1f1b", row.microbatch, None, "none", layout=stages)
    if row.schedule == "1F1B-I":
        return Config(mesh, "interleaved-1f1b", row.microbatch, stages.num_stages // row.gpus,
                      "none", layout=stages)
    cap = {"ZB-1p": 1, "ZB-2p": 2}[row.schedule] * row.gpus
    return Config(mesh, "synth", row.microbatch, 1, "none", layout=stages, activation_cap=cap)


def predict(row: ZeroBubbleRow) -> StepPrediction:
    """The planner's prediction for the row."""
    model = gpt_like(f"gpt-{row.model.lower()}", row.layers, row.hidden, row.heads, SEQ,
                     VOCAB, learned_positions=True)
    training = TrainingSpec(row.microbatch * row.microbatches, row.microbatch, "fp16",
                            "none", ZB_RECIPE)
    cluster = cluster_preset("dgx-a100", max(1, row.gpus // GPUS_PER_NODE))
    return StepModel(model, training, cluster).predict(config(row))


@dataclass(frozen=True)
class Cell:
    """One comparison of the paper: the rows of one (table, model, m) and predictions."""

    rows: tuple[ZeroBubbleRow, ...]
    predictions: tuple[StepPrediction, ...]

    def throughput(self, i: int) -> float:
        """Predicted samples per GPU per second of row i."""
        row, pred = self.rows[i], self.predictions[i]
        return row.microbatch * row.microbatches / pred.step_time / row.gpus

    @property
    def measured_best(self) -> str:
        return max(self.rows, key=lambda r: r.samples_per_gpu_s).schedule

    @property
    def predicted_best(self) -> str:
        return self.rows[max(range(len(self.rows)), key=self.throughput)].schedule

    def pairs(self) -> tuple[int, int]:
        """(pairs ordered as measured, pairs), ties in the measurement skipped."""
        agree = total = 0
        for i in range(len(self.rows)):
            for j in range(i + 1, len(self.rows)):
                a, b = self.rows[i].samples_per_gpu_s, self.rows[j].samples_per_gpu_s
                if a == b:
                    continue
                total += 1
                agree += (a > b) == (self.throughput(i) > self.throughput(j))
        return agree, total


def cells(tables: tuple[str, ...] = ("4", "8", "9")) -> list[Cell]:
    """Every comparison of the given tables, predicted."""
    groups: dict[tuple[str, str, int], list[ZeroBubbleRow]] = {}
    for row in ROWS:
        if row.table in tables:
            groups.setdefault((row.table, row.model, row.microbatches), []).append(row)
    return [Cell(tuple(rows), tuple(predict(r) for r in rows)) for rows in groups.values()]


def _summary(name: str, group: list[Cell]) -> str:
    top = sum(c.measured_best == c.predicted_best for c in group)
    agree = sum(c.pairs()[0] for c in group)
    total = sum(c.pairs()[1] for c in group)
    thr = [abs(c.throughput(i) / r.samples_per_gpu_s - 1) for c in group
           for i, r in enumerate(c.rows)]
    mem = [abs(p.memory.total / 1e9 / r.memory_gb - 1) for c in group
           for r, p in zip(c.rows, c.predictions, strict=True)]
    return (f"{name}: fastest schedule right in {top}/{len(group)} cells; pairs ordered as "
            f"measured {agree}/{total}; throughput MAE {sum(thr) / len(thr):.1%}; peak "
            f"memory MAE {sum(mem) / len(mem):.1%}")


def report() -> str:
    """The tables and the summary, as Markdown."""
    lines = [f"### {SOURCE}", "", "| table | model | m | b | schedule | measured /GPU/s | "
             "predicted /GPU/s | error | measured GB | predicted GB | error | best "
             "(measured / predicted) |", "|" + " --- |" * 12]
    all_cells = cells()
    for c in all_cells:
        for i, (row, pred) in enumerate(zip(c.rows, c.predictions, strict=True)):
            best = f"{c.measured_best} / {c.predicted_best}" if i == 0 else ""
            gb = pred.memory.total / 1e9
            lines.append(
                f"| {row.table} | {row.model} | {row.microbatches} | {row.microbatch} | "
                f"{row.schedule} | {row.samples_per_gpu_s:g} | {c.throughput(i):.3g} | "
                f"{c.throughput(i) / row.samples_per_gpu_s - 1:+.1%} | {row.memory_gb:g} | "
                f"{gb:.1f} | {gb / row.memory_gb - 1:+.1%} | {best} |")
    lines += [""] + [_summary(f"Table {t}", [c for c in all_cells if c.rows[0].table == t])
                     for t in ("4", "8", "9")] + [_summary("All", all_cells)]
    return "\n".join(lines)


def main() -> None:
    """Print :func:`report`."""
    print(report())


if __name__ == "__main__":
    main()
