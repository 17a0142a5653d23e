"""Published long-context, MoE and FP8 training runs the cost model is NOT fitted on.

Each :class:`ParallelRun` is one measured layout — model, cluster, mesh (with cp and ep),
batch, schedule, dtype, placement — and what was measured: tokens per second per GPU or
model TFLOP/s per GPU. :mod:`ringpipe.cost.published.parallel_report` predicts them all.

The rows live in ``data/`` (each file carries its citation and its columns' meanings) and
are read by :func:`ringpipe.cost.published.loader.load_table`; this module adds only the
wiring the sources state in prose:

* **Llama 3 405B, long-context stage** (``llama3_405b_long_context.csv``): TP8 × CP16 ×
  PP16 × DP8 on 16,384 H100s (``dgx-h100``), sequence 131072, BF16, interleaved 1F1B
  (its v and the recomputation left to the planner, as for the other Llama 3 rows),
  ringpipe's placement (the paper's [TP, CP, PP, DP] order);
* **NeMo long sequences** (``nemo_long_sequence.csv``): Llama 2 7B in FP8 on DGX-H100 at
  4K-1M tokens, each with-CP layout, micro-batch 1 (not published), Megatron placement;
* **Megatron-Bridge** (``megatron_bridge_h100.csv``): FP8 rows on DGX-H100 — Llama 3 70B,
  Llama 3.1 405B with CP2, Qwen3-30B-A3B with EP8, DeepSeek-V3 with EP64 — at their
  published TP, PP, CP, VP, EP and micro-batch, interleaved 1F1B with v = VP, Megatron
  placement, expert-TP 1 (the recipes' ``expert_tensor_parallel_size``), load imbalance 1
  (the benchmarks force-balance the experts);
* **DeepSeek-V3** (``deepseek_v3_report.csv``): 2048 H800s (H100 compute; NVLink 160 GB/s
  and IB 50 GB/s per GPU as the report states), PP16 × EP64 × DP128, no TP, FP8,
  DualPipeV (the V-shaped, "cut-in-half" form of the DualPipe the report describes, from
  DeepSeek's own DualPipe repository; its overlapped F/B pairs are the IR's), Megatron
  placement (an EP group on 8 consecutive nodes, as the report places it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ringpipe.cost.hardware.cluster import GB, Cluster, Link, cluster_preset
from ringpipe.cost.published.loader import load_table
from ringpipe.cost.published.training_runs import Llama3Row
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.model.presets import model_preset

__all__ = ["ParallelRun", "bridge_runs", "deepseek_report_run", "long_context_runs",
           "nemo_long_sequence_runs"]


@dataclass(frozen=True)
class NemoLongSequenceRow:
    """A row of ``nemo_long_sequence.csv``."""

    seq_k: int
    gpus: int
    global_batch: int
    no_cp_tflops: float
    tp: int
    pp: int
    dp: int
    cp: int
    cp_tflops: float


@dataclass(frozen=True)
class BridgeRow:
    """A row of ``megatron_bridge_h100.csv``."""

    release: str
    model: str
    gpus: int
    global_batch: int
    microbatch: int
    sequence: int
    tp: int
    pp: int
    cp: int
    vp: int
    ep: int
    tokens_per_gpu_s: float
    tflops_per_gpu: float


@dataclass(frozen=True)
class DeepSeekReportRow:
    """A row of ``deepseek_v3_report.csv``."""

    gpus: int
    pp: int
    ep: int
    dp: int
    sequence: int
    global_batch: int
    tokens: int
    gpu_hours: int
    nvlink_gbs: float
    ib_gbs: float


@dataclass(frozen=True)
class ParallelRun:
    """One published run; ``tokens_per_gpu_s`` or ``tflops_per_gpu`` is what was
    measured (the other may be None). ``chunks`` None: the planner picks v; ``microbatch``
    None: the planner picks it."""

    source: str
    label: str
    model: ModelConfig
    cluster: Cluster
    mesh: Mesh
    global_batch: int
    microbatch: int | None
    schedule: str
    chunks: int | None
    dtype: str
    placement: str
    tokens_per_gpu_s: float | None = None
    tflops_per_gpu: float | None = None


def _h100(gpus: int) -> Cluster:
    """``dgx-h100`` with ``gpus`` GPUs (one partial node below 8)."""
    if gpus < 8:
        return replace(cluster_preset("dgx-h100", 1), gpus_per_node=gpus)
    return cluster_preset("dgx-h100", gpus // 8)


def long_context_runs() -> tuple[ParallelRun, ...]:
    """Llama 3 405B's long-context row (module docstring)."""
    table = load_table("llama3_405b_long_context.csv", Llama3Row)
    out = []
    for r in table.rows:
        model = replace(model_preset("llama3-405b"), seq=r.sequence,
                        name=f"llama3-405b+seq={r.sequence}")
        out.append(ParallelRun(table.source.short, f"Llama 3 405B, seq {r.sequence}",
                               model, _h100(r.gpus),
                               Mesh(dp=r.dp, pp=r.pp, tp=r.tp, cp=r.cp), r.global_batch, 1,
                               "interleaved-1f1b", None, "bf16", "ringpipe",
                               tflops_per_gpu=r.tflops_per_gpu))
    return tuple(out)


def nemo_long_sequence_runs() -> tuple[ParallelRun, ...]:
    """NeMo's Llama 2 7B with-CP layouts (module docstring)."""
    table = load_table("nemo_long_sequence.csv", NemoLongSequenceRow)
    out = []
    for r in table.rows:
        seq = r.seq_k * 1024
        model = replace(model_preset("llama2-7b"), seq=seq, name=f"llama2-7b+seq={seq}")
        mesh = Mesh(dp=r.dp, pp=r.pp, tp=r.tp, cp=r.cp)
        out.append(ParallelRun(table.source.short, f"Llama 2 7B, {r.seq_k}K, cp{r.cp}",
                               model, _h100(r.gpus), mesh, r.global_batch, 1, "1f1b", None,
                               "fp8", "megatron", tflops_per_gpu=r.cp_tflops))
    return tuple(out)


#: Megatron-Bridge model names -> ringpipe presets.
_BRIDGE_MODELS = {"LLAMA3_70B": "llama3-70b", "LLAMA3.1_405B": "llama3-405b",
                  "Qwen3_30B_a3B": "qwen3-30b-a3b", "DeepSeekV3 (dropless)": "deepseek-v3-like"}


def bridge_runs() -> tuple[ParallelRun, ...]:
    """The Megatron-Bridge DGX-H100 rows (module docstring)."""
    table = load_table("megatron_bridge_h100.csv", BridgeRow)
    out = []
    for r in table.rows:
        model = replace(model_preset(_BRIDGE_MODELS[r.model]), seq=r.sequence)
        dp = r.gpus // (r.tp * r.pp * r.cp)
        mesh = Mesh(dp=dp, pp=r.pp, tp=r.tp, cp=r.cp, ep=r.ep,
                    etp=1 if model.is_moe else None)
        schedule, chunks = ("interleaved-1f1b", r.vp) if r.vp > 1 else ("1f1b", None)
        out.append(ParallelRun(table.source.short, f"{r.model} ({r.release})", model,
                               _h100(r.gpus), mesh, r.global_batch, r.microbatch, schedule,
                               chunks, "fp8", "megatron", tokens_per_gpu_s=r.tokens_per_gpu_s,
                               tflops_per_gpu=r.tflops_per_gpu))
    return tuple(out)


def deepseek_report_run() -> ParallelRun:
    """DeepSeek-V3's pre-training as its report describes it (module docstring)."""
    table = load_table("deepseek_v3_report.csv", DeepSeekReportRow)
    (r,) = table.rows
    base = cluster_preset("dgx-h100", r.gpus // 8)
    h800 = replace(base, name="h800", intra=Link(r.nvlink_gbs * GB, base.intra.latency),
                   inter=Link(r.ib_gbs * GB, base.inter.latency))
    mesh = Mesh(dp=r.dp, pp=r.pp, tp=1, ep=r.ep)
    return ParallelRun(table.source.short, "DeepSeek-V3 pre-training",
                       model_preset("deepseek-v3-like"), h800, mesh, r.global_batch, None,
                       "dualpipev", None, "fp8", "megatron",
                       tokens_per_gpu_s=r.tokens / (r.gpu_hours * 3600.0))
