"""Published training measurements the cost model is NOT fitted on (held-out data).

Each :class:`PublishedRun` is one measured configuration: model, cluster, mesh, schedule,
micro-batch, recipe, and what was measured (seconds per iteration, or ``None`` when the
run ran out of memory). :mod:`ringpipe.cost.published.validate` predicts them all.

The measured rows live in ``data/`` (each file carries its full citation and its
columns' meanings and units) and are read by :func:`ringpipe.cost.published.loader.load_table`;
this module adds the wiring the sources describe in prose: the model shapes, the
recipe each table ran, the cluster.

* **BLOOM-181B alternative splits** (``bloom_181b_splits.csv``: BigScience,
  ``train/tr11-176B-ml/chronicles-prequel.md``, "GBS Variations" and "Tweaking TP",
  2022-02-25): Jean Zay, 48 nodes × 8 A100 80GB, NVLink inside, 4 Omni-Path 100 Gb/s
  links per node — 6.25 GB/s per GPU when all eight cross, up to one link's 12.5 GB/s
  alone. Model: 72 layers, hidden 14336, 64 heads, sequence 2048, vocabulary 250880
  (tied), ALiBi. Recipe: Megatron-DeepSpeed with fp16, ZeRO-1 (distributed optimizer),
  full activation checkpointing, no sequence parallelism, no flash attention,
  DeepSpeed's 1F1B pipeline, gradients reduced after the pipeline.
* **Korthikanti et al. 2022** (``korthikanti_2022.csv``: arXiv 2205.05198, Tables 3
  and 4): GPT models 22B/175B/530B/1T on DGX A100, sequence 2048, vocabulary 51200;
  iteration time with full recomputation (the SC'21 recipe) and with sequence
  parallelism + selective recomputation ("present work").
* **Llama 3 405B** (``llama3_405b.csv``: arXiv 2407.21783, Table 4): TP 8, CP 1, PP 16,
  DP 64 and 128 on 8,192 and 16,384 H100s, with the published BF16 TFLOP/s per GPU.
  Seconds per iteration follow from the TFLOP/s with the paper's model FLOPs (6 ×
  parameters × tokens plus attention), here
  :func:`ringpipe.cost.training.spec.executed_flops`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ringpipe.cost.published.loader import absent_as, load_table
from ringpipe.cost.training.recipe import MEGATRON, SC21, Recipe
from ringpipe.model.config import ModelConfig
from ringpipe.model.presets import gpt_like, model_preset


@dataclass(frozen=True)
class BloomSplit:
    """A row of ``bloom_181b_splits.csv``."""

    table: str
    nodes: int
    dp: int
    tp: int
    pp: int
    microbatch: int
    global_batch: int
    recompute: str
    step_s: float | None = absent_as("OOM")


@dataclass(frozen=True)
class KorthikantiRow:
    """A row of ``korthikanti_2022.csv``."""

    model: str
    heads: int
    hidden: int
    layers: int
    tp: int
    pp: int
    gpus: int
    global_batch: int
    microbatch: int
    recompute: str
    step_s: float


@dataclass(frozen=True)
class Llama3Row:
    """A row of ``llama3_405b.csv`` or ``llama3_405b_long_context.csv`` (Llama 3 405B
    pre-training: mesh, sequence, batch and achieved TFLOP/s per GPU)."""

    gpus: int
    tp: int
    cp: int
    pp: int
    dp: int
    sequence: int
    global_batch: int
    tflops_per_gpu: float


_BLOOM = load_table("bloom_181b_splits.csv", BloomSplit)
_KORTHIKANTI = load_table("korthikanti_2022.csv", KorthikantiRow)
_LLAMA3 = load_table("llama3_405b.csv", Llama3Row)

BLOOM_SOURCE = _BLOOM.source.short
KORTHIKANTI_SOURCE = _KORTHIKANTI.source.short
LLAMA3_SOURCE = _LLAMA3.source.short

#: Megatron-DeepSpeed as BigScience ran it in February 2022 (see module docstring).
BLOOM_RECIPE = Recipe(sequence_parallel=False, flash_attention=False,
                      distributed_optimizer=True, overlap_grad_reduce=False,
                      fp32_grads=False)
#: Korthikanti et al.'s "present work": SC'21's recipe plus sequence parallelism.
KORTHIKANTI_RECIPE = Recipe(sequence_parallel=True, flash_attention=False,
                            distributed_optimizer=False, overlap_grad_reduce=False,
                            fp32_grads=False)
#: The recipe of each Korthikanti row, by its recomputation.
_KORTHIKANTI_RECIPES = {"full": SC21, "selective": KORTHIKANTI_RECIPE}

BLOOM_181B = gpt_like("bloom-181b-l72-h14336", 72, 14336, 64, 2048, 250880,
                       learned_positions=True)


@dataclass(frozen=True)
class PublishedRun:
    """One published measurement; ``step_s`` None means it ran out of memory."""

    source: str
    model: ModelConfig
    cluster: str
    nodes: int
    tp: int
    pp: int
    dp: int
    microbatch: int
    global_batch: int
    step_s: float | None
    recompute: str
    recipe: Recipe
    dtype: str = "fp16"
    schedule: str = "1f1b"
    inter_gbs: float | None = None
    nic_gbs: float | None = None
    table: str = ""


def _bloom(row: BloomSplit) -> PublishedRun:
    return PublishedRun(BLOOM_SOURCE, BLOOM_181B, "dgx-a100", row.nodes, row.tp, row.pp,
                        row.dp, row.microbatch, row.global_batch, row.step_s, row.recompute,
                        BLOOM_RECIPE, inter_gbs=6.25, nic_gbs=12.5, table=row.table)


#: BLOOM-181B on 48 nodes: the first ten from "GBS Variations" (global batch 2016 or
#: 2048), the last eleven the "Tweaking TP" table (one global batch, 2048).
BLOOM_SPLITS = tuple(_bloom(row) for row in _BLOOM.rows)


def _gpt(row: KorthikantiRow) -> ModelConfig:
    return gpt_like(f"gpt-{row.model.lower()}", row.layers, row.hidden, row.heads, 2048,
                    51200, learned_positions=True)


def _kort(row: KorthikantiRow) -> PublishedRun:
    nodes, dp = row.gpus // 8, row.gpus // (row.tp * row.pp)
    return PublishedRun(KORTHIKANTI_SOURCE, _gpt(row), "dgx-a100", nodes, row.tp, row.pp, dp,
                        row.microbatch, row.global_batch, row.step_s, row.recompute,
                        _KORTHIKANTI_RECIPES[row.recompute])


#: Full recomputation vs sequence parallelism + selective recomputation, per model.
KORTHIKANTI = tuple(_kort(row) for row in _KORTHIKANTI.rows)

#: Llama 3 405B's production layout: (nodes, dp, published BF16 TFLOP/s per GPU).
LLAMA3_405B_TFLOPS = tuple((row.gpus // 8, row.dp, row.tflops_per_gpu) for row in _LLAMA3.rows)


def llama3_runs() -> tuple[tuple[PublishedRun, float], ...]:
    """Llama 3 405B at TP8 × PP16 × DP under today's default recipe (recomputation left
    to the planner: ``recompute`` is a placeholder; micro-batch 1, not published), with
    the published TFLOP/s."""
    model = model_preset("llama3-405b")
    runs = []
    for row in _LLAMA3.rows:
        if row.cp != 1 or row.sequence != model.seq:
            raise ValueError(f"{_LLAMA3.name}: ringpipe prices CP 1 at sequence "
                             f"{model.seq}, not CP {row.cp} at {row.sequence}")
        runs.append((PublishedRun(LLAMA3_SOURCE, model, "dgx-h100", row.gpus // 8, row.tp,
                                  row.pp, row.dp, 1, row.global_batch, None, "none", MEGATRON,
                                  dtype="bf16", schedule="interleaved-1f1b"),
                     row.tflops_per_gpu))
    return tuple(runs)
