"""Published training measurements the cost model is NOT fitted on (held-out data).

Each :class:`PublishedRun` is one measured configuration: model, cluster, mesh, schedule,
micro-batch, recipe, and what was measured (seconds per iteration, or ``None`` when the
run ran out of memory). :mod:`ringpipe.cost.published.validate` predicts them all.

**BLOOM-181B alternative splits** (BigScience, ``bigscience-workshop/bigscience``,
``train/tr11-176B-ml/chronicles-prequel.md``, sections "GBS Variations" and "Tweaking
TP", all measured on 2022-02-25 on one cluster: Jean Zay, 48 nodes × 8 A100 80GB,
NVLink inside, 4 Omni-Path 100 Gb/s links per node — 6.25 GB/s per GPU when all eight
cross, up to one link's 12.5 GB/s alone; ``train/tr11-176B-ml/README.md``, Hardware).
Model: 72 layers, hidden 14336, 64 heads, sequence 2048, vocabulary 250880 (tied), ALiBi. Recipe:
Megatron-DeepSpeed with fp16, ZeRO-1 (distributed optimizer), full activation
checkpointing, no sequence parallelism, no flash attention, DeepSpeed's 1F1B pipeline,
gradients reduced after the pipeline. Measured "Sec/it" at iteration 2; the row
(dp 8, tp 4, pp 12, mbs 2) was measured twice (110.48 s and 113.54 s): both are kept.
Three splits ran out of memory ("OOM"). Rows at global batch 1568 are left out (their
TFLOP/s disagree with the same split at 2048 by 30%, a warm-up artefact).

**Korthikanti et al. 2022** ("Reducing Activation Recomputation in Large Transformer
Models", arXiv 2205.05198, Tables 3 and 4): GPT models 22B/175B/530B/1T on DGX A100,
TP 8, PP 1/8/35/64, global batch 4/64/280/512 (micro-batch 4, 1, 1, 1), sequence 2048,
vocabulary 51200; iteration time with full recomputation (baseline) and with sequence
parallelism + selective recomputation ("present work").

**Llama 3 405B** (Llama Team 2024, "The Llama 3 Herd of Models", arXiv 2407.21783,
Table 4): TP 8, CP 1, PP 16, DP 64 and 128 on 8,192 and 16,384 H100s, sequence 8192,
16M tokens per batch (2048 sequences), 430 and 400 BF16 TFLOP/s per GPU (43% and 41%
MFU). Seconds per iteration follow from the TFLOP/s with the paper's model FLOPs (6 ×
parameters × tokens plus attention), here :func:`ringpipe.cost.training.spec.executed_flops`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ringpipe.cost.training.recipe import MEGATRON, SC21, Recipe
from ringpipe.model.config import ModelConfig
from ringpipe.model.presets import gpt_like, model_preset

BLOOM_SOURCE = ("BigScience tr11-176B-ml chronicles-prequel.md, 'GBS Variations' and "
                "'Tweaking TP' (2022-02-25, 48 × 8 A100 80GB)")
KORTHIKANTI_SOURCE = "Korthikanti et al. 2022 (arXiv 2205.05198), Tables 3-4"
LLAMA3_SOURCE = "Llama Team 2024 (arXiv 2407.21783), Table 4"

#: Megatron-DeepSpeed as BigScience ran it in February 2022 (see module docstring).
BLOOM_RECIPE = Recipe(sequence_parallel=False, flash_attention=False,
                      distributed_optimizer=True, overlap_grad_reduce=False,
                      fp32_grads=False)
#: Korthikanti et al.'s "present work": SC'21's recipe plus sequence parallelism.
KORTHIKANTI_RECIPE = Recipe(sequence_parallel=True, flash_attention=False,
                            distributed_optimizer=False, overlap_grad_reduce=False,
                            fp32_grads=False)

BLOOM_181B = gpt_like("bloom-181b-l72-h14336", 72, 14336, 64, 2048, 250880,
                       learned_positions=True)


def _gpt(name: str, layers: int, hidden: int, heads: int) -> ModelConfig:
    return gpt_like(name, layers, hidden, heads, 2048, 51200, learned_positions=True)


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


def _bloom(dp: int, tp: int, pp: int, mbs: int, gbs: int, sec: float | None,
           table: str = "GBS Variations") -> PublishedRun:
    return PublishedRun(BLOOM_SOURCE, BLOOM_181B, "dgx-a100", 48, tp, pp, dp, mbs, gbs, sec,
                        "full", BLOOM_RECIPE, inter_gbs=6.25, nic_gbs=12.5, table=table)


def _tweak(dp: int, tp: int, pp: int, mbs: int, sec: float | None) -> PublishedRun:
    return _bloom(dp, tp, pp, mbs, 2048, sec, "Tweaking TP")


#: BLOOM-181B on 48 nodes: (dp, tp, pp, micro-batch, global batch, Sec/it or OOM); the
#: first ten from "GBS Variations" (global batch 2016 or 2048), the last eleven the
#: "Tweaking TP" table (one global batch, 2048).
BLOOM_SPLITS = (
    _bloom(8, 8, 6, 4, 2048, 114.11),
    _bloom(8, 8, 6, 6, 2016, 123.57),
    _bloom(4, 8, 12, 4, 2048, 117.07),
    _bloom(4, 8, 12, 2, 2048, 128.82),
    _bloom(6, 8, 8, 4, 2016, 113.16),
    _bloom(12, 8, 4, 2, 2016, 125.52),
    _bloom(12, 8, 4, 4, 2016, 114.81),
    _bloom(24, 8, 2, 1, 2016, 145.45),
    _bloom(24, 8, 2, 2, 2016, 136.13),
    _bloom(48, 8, 1, 1, 2016, None),
    _tweak(8, 4, 12, 4, 111.89),
    _tweak(8, 4, 12, 2, 110.48),
    _tweak(8, 4, 12, 2, 113.54),
    _tweak(16, 4, 6, 4, 117.11),
    _tweak(16, 4, 6, 2, 111.71),
    _tweak(16, 2, 12, 2, 112.50),
    _tweak(32, 2, 6, 2, None),
    _tweak(32, 2, 6, 1, None),
    _tweak(8, 2, 24, 1, 119.53),
    _tweak(8, 2, 24, 2, 122.75),
    _tweak(4, 4, 24, 1, 130.60),
)


def _kort(model: ModelConfig, gpus: int, pp: int, batch: int, mbs: int, full_s: float,
          present_s: float) -> tuple[PublishedRun, PublishedRun]:
    nodes, dp = gpus // 8, gpus // (8 * pp)
    base = PublishedRun(KORTHIKANTI_SOURCE, model, "dgx-a100", nodes, 8, pp, dp, mbs, batch,
                        full_s, "full", SC21)
    present = PublishedRun(KORTHIKANTI_SOURCE, model, "dgx-a100", nodes, 8, pp, dp, mbs,
                           batch, present_s, "selective", KORTHIKANTI_RECIPE)
    return base, present


#: Full recomputation vs sequence parallelism + selective recomputation.
KORTHIKANTI = (
    *_kort(_gpt("gpt-22b", 48, 6144, 64), 8, 1, 4, 4, 1.42, 1.10),
    *_kort(_gpt("gpt-175b", 96, 12288, 96), 64, 8, 64, 1, 18.13, 13.75),
    *_kort(_gpt("gpt-530b", 105, 20480, 128), 280, 35, 280, 1, 49.05, 37.83),
    *_kort(_gpt("gpt-1t", 128, 25600, 160), 512, 64, 512, 1, 94.42, 71.49),
)

#: Llama 3 405B's production layout: (nodes, dp, published BF16 TFLOP/s per GPU).
LLAMA3_405B_TFLOPS = ((1024, 64, 430.0), (2048, 128, 400.0))


def llama3_runs() -> tuple[tuple[PublishedRun, float], ...]:
    """Llama 3 405B at TP8 × PP16 × DP under today's default recipe (recomputation left
    to the planner: ``recompute`` is a placeholder), with the published TFLOP/s."""
    model = model_preset("llama3-405b")
    return tuple((PublishedRun(LLAMA3_SOURCE, model, "dgx-h100", nodes, 8, 16, dp, 1, 2048,
                               None, "none", MEGATRON, dtype="bf16",
                               schedule="interleaved-1f1b"), tflops)
                 for nodes, dp, tflops in LLAMA3_405B_TFLOPS)
