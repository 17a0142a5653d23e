"""Megatron-LM's SC'21 Table 1, and ringpipe's prediction for every row.

The rows are ``data/megatron_sc21_table1.csv`` (read by
:func:`ringpipe.cost.published.loader.load_table` into :class:`MegatronRow`; the file
carries the citation and each column's meaning and unit).

Narayanan et al., "Efficient Large-Scale Language Model Training on GPU Clusters Using
Megatron-LM", SC'21 (arXiv 2104.04473), Table 1: GPT models from 1.7B to 1T
parameters on 80 GB A100s (DGX A100 nodes: NVLink inside, 8 × HDR InfiniBand across),
sequence 2048, vocabulary 51200, full activation recomputation, fp16, and the SC'21
recipe (:data:`ringpipe.cost.training.recipe.SC21`: no sequence parallelism, no flash
attention, no distributed optimizer, gradient all-reduce after the pipeline drains).
Micro-batch sizes and interleaving (virtual pipeline) depths are those of the paper's
launch script, Megatron-LM ``examples/sc21/run_table_1.sh``: interleaved 1F1B for the 76B to 530B
rows, plain 1F1B for 39B and 1T, no pipeline below 39B.

The published TFLOP/s per GPU count FLOPs as (eq. 3)

    F = 96·B·s·l·h²·(1 + s/(6h) + V/(16·l·h))   per iteration,

which includes the recomputation forward; the prediction divides the same F by the
predicted step time and the GPU count (:func:`ringpipe.cost.training.step_time.executed_flops`
reproduces F exactly).

:func:`calibrate` fits η_max (the achievable fraction of peak of a large GEMM) by least
squares on the relative errors of all rows at once, for a given saturation d0
(golden-section search; the predicted throughput is monotone in η_max), and
:func:`calibrate_saturation` fits d0 over a grid, refitting η_max at each point: the two
constants of :mod:`ringpipe.cost.hardware.gpu`, fitted on this table and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ringpipe.cost.hardware.cluster import Cluster, cluster_preset
from ringpipe.cost.published.loader import load_table
from ringpipe.cost.training.prediction import Config, StepPrediction
from ringpipe.cost.training.recipe import SC21
from ringpipe.cost.training.spec import TrainingSpec
from ringpipe.cost.training.step_time import StepModel
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.model.presets import gpt_like

SEQ = 2048
VOCAB = 51200


@dataclass(frozen=True)
class MegatronRow:
    """One row of Table 1 (plus the launch script's micro-batch size and chunks)."""

    name: str
    heads: int
    hidden: int
    layers: int
    tp: int
    pp: int
    gpus: int
    batch: int
    microbatch: int
    chunks: int
    published_tflops: float

    @property
    def dp(self) -> int:
        """Data-parallel size, gpus / (tp · pp)."""
        return self.gpus // (self.tp * self.pp)

    @property
    def schedule(self) -> str:
        """The schedule the row ran (interleaved when chunks > 1)."""
        return "interleaved-1f1b" if self.chunks > 1 else "1f1b"

    def model(self) -> ModelConfig:
        """The GPT model of this row (4h FFN, tied embeddings, learned positions)."""
        return gpt_like(f"gpt-{self.name}", self.layers, self.hidden, self.heads, SEQ,
                         VOCAB, learned_positions=True)

    def config(self) -> Config:
        """The published configuration, with full recomputation."""
        return Config(Mesh(dp=self.dp, pp=self.pp, tp=self.tp), self.schedule,
                      self.microbatch, self.chunks, "full")

    def paper_flops(self) -> float:
        """Megatron's FLOPs per iteration (eq. 3)."""
        b, s, n, h, v = self.batch, SEQ, self.layers, self.hidden, VOCAB
        return 96.0 * b * s * n * h * h * (1 + s / (6 * h) + v / (16 * n * h))


#: Table 1, read from ``data/megatron_sc21_table1.csv`` (its citation and columns there).
TABLE_1 = load_table("megatron_sc21_table1.csv", MegatronRow).rows


@dataclass(frozen=True)
class Comparison:
    """A row, ringpipe's prediction for it and the relative error."""

    row: MegatronRow
    prediction: StepPrediction
    predicted_tflops: float

    @property
    def error(self) -> float:
        """(predicted - published) / published."""
        return self.predicted_tflops / self.row.published_tflops - 1


def compare_row(row: MegatronRow, cluster: Cluster | None = None) -> Comparison:
    """Predict ``row`` on DGX A100 nodes (or ``cluster``, resized to the row's GPUs)."""
    base = cluster_preset("dgx-a100") if cluster is None else cluster
    nodes, rest = divmod(row.gpus, base.gpus_per_node)
    if rest:
        raise ValueError(f"{row.name}: {row.gpus} GPUs is not a whole number of nodes")
    step = StepModel(row.model(), TrainingSpec(row.batch, row.microbatch, "fp16", "full",
                                               SC21), base.with_nodes(nodes))
    pred = step.predict(row.config())
    tflops = row.paper_flops() / (pred.step_time * row.gpus) / 1e12
    return Comparison(row, pred, tflops)


def compare(cluster: Cluster | None = None) -> tuple[Comparison, ...]:
    """Every row of :data:`TABLE_1`, predicted."""
    return tuple(compare_row(row, cluster) for row in TABLE_1)


def calibrate(cluster: Cluster | None = None, tol: float = 1e-4) -> float:
    """The achievable fraction minimising Σ_rows (predicted/published - 1)²."""
    base = cluster_preset("dgx-a100") if cluster is None else cluster

    def loss(frac: float) -> float:
        c = replace(base, achievable_fraction=frac)
        return sum(cmp.error ** 2 for cmp in compare(c))

    lo, hi = 0.2, 1.0
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = loss(a), loss(b)
    while hi - lo > tol:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = loss(b)
    return (lo + hi) / 2


def loss(cluster: Cluster) -> float:
    """Σ_rows (predicted / published − 1)² on ``cluster``."""
    return sum(cmp.error ** 2 for cmp in compare(cluster))


def with_constants(cluster: Cluster, fraction: float, saturation: float) -> Cluster:
    """``cluster`` with η_max = ``fraction`` and d0 = ``saturation``."""
    return replace(cluster, achievable_fraction=fraction,
                   kernels=replace(cluster.kernels, saturation=saturation))


def calibrate_saturation(grid: tuple[float, ...] = (0, 64, 96, 128, 144, 160, 192, 256),
                         cluster: Cluster | None = None) -> tuple[float, float]:
    """(η_max, d0) minimising :func:`loss` over ``grid`` for d0 (η_max refitted at each
    point). Slow (one golden-section search per grid point)."""
    base = cluster_preset("dgx-a100") if cluster is None else cluster
    best: tuple[float, float, float] | None = None
    for d0 in grid:
        c = with_constants(base, base.achievable_fraction, d0)
        frac = calibrate(c, tol=1e-3)
        value = loss(with_constants(c, frac, d0))
        if best is None or value < best[0]:
            best = (value, frac, d0)
    assert best is not None
    return best[1], best[2]


def format_markdown(comparisons: tuple[Comparison, ...]) -> str:
    """The comparison as a Markdown table (model, config, published, predicted, error)."""
    lines = ["| model | TP | PP | DP | GPUs | batch | schedule (mb, v) | published TFLOP/s "
             "| predicted TFLOP/s | error |", "|" + " --- |" * 10]
    for cmp in comparisons:
        r = cmp.row
        sched = f"{r.schedule} (mb {r.microbatch}" + (f", v {r.chunks})" if r.chunks > 1
                                                      else ")")
        lines.append(f"| {r.name} | {r.tp} | {r.pp} | {r.dp} | {r.gpus} | {r.batch} | "
                     f"{sched} | {r.published_tflops:.0f} | {cmp.predicted_tflops:.1f} | "
                     f"{cmp.error * 100:+.1f}% |")
    return "\n".join(lines)
