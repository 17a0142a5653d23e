"""Memory per GPU: model states by the recipe, activations by Korthikanti et al.'s equations.

**Model states** per parameter (Megatron-LM ``docs/source/api-guide/dist_optimizer.md``,
mixed-precision Adam; d = DP size):

=====================  ==================  =======================
weights / gradients     plain optimizer     distributed optimizer
=====================  ==================  =======================
fp16 / fp16             2 + 2 + 16 = 20     2 + 2 + 16/d
bf16 / fp32 (default)   2 + 4 + 12 = 18     2 + 4 + 12/d
=====================  ==================  =======================

(16 = fp32 master weights, Adam m and v, and an fp32 gradient copy; 12 without the
copy, as bf16 keeps fp32 main gradients.)

**Activations** kept by one layer for one micro-batch of b sequences, 16-bit, with TP
size t (Korthikanti et al. 2022, arXiv 2205.05198, eqs. 1–2 and Table 2), term by term
so that each recipe switch acts on its own terms. With r = 1/t under sequence
parallelism, else 1, kv = kv_heads/heads, f = FFN width, a = heads:

* replicated unless SP (× r): both norm inputs 4sbh, QKV and fc1 inputs 4sbh, and
  with dropout the two dropout masks 2sbh — 10·sbh for GPT;
* split over t: Q, K, V 2sbh(1 + 2·kv), attention output (projection input) 2sbh,
  MLP: GeLU input and fc2 input 4sbf (SwiGLU: gate, up and fc2 input 6sbf) — 24·sbh for
  GPT;
* attention scores, split over t: softmax output 2as²b, with dropout also its mask
  as²b and output 2as²b: 5as²b — **dropped** by selective recomputation and by flash
  attention (which keeps only the fp32 log-sum-exp, 4·a·s·b);
* selective recomputation under flash attention (which already recomputes the attention
  core) recomputes the next memory-heavy, compute-cheap operators instead, in
  Korthikanti et al.'s spirit: the two norms and the MLP activation (Megatron-Core's
  ``--recompute-modules layernorm`` and activation recompute), so their outputs — the
  QKV and fc1 inputs 4sbh·r and the fc2 input 2sbf/t — are not kept;
* full recomputation keeps only the layer input, 2sbh·r.

For GPT (kv = 1, f = 4h, dropout) this gives Korthikanti's sbh(10 + 24/t + 5as/(ht))
without SP, sbh·(34/t + 5as/(ht)) with SP, 34·sbh/t with SP + selective, and 2sbh/t
with SP + full.

A pipeline rank holds its stages' layers × the most (stage, micro-batch) pairs it keeps
at once (the schedule simulator's peak); the last stage also holds fp32 logits of one
micro-batch, 4·b·s·V/t; full recomputation adds one layer's full activations being
recomputed.

**Communication buffers**: NCCL's per-communicator buffers (NCCL_BUFFSIZE = 4 MiB per
channel and peer, up to 16 channels, both directions: 128 MiB per communicator, three
communicators TP/PP/DP) plus, under SP, the all-gathered b·s·h input the TP all-gather
writes into. **Reserve**: the CUDA context and cuBLAS workspace, 1.5 GiB (BigScience
measured 1271–1573 MiB for the CUDA kernels alone on A100s; ``bigscience``
``train/tr11-176B-ml/chronicles-prequel.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ringpipe.cost.hardware.cluster import GIB
from ringpipe.cost.training.parallel.experts import MoeShape
from ringpipe.cost.training.recipe import Recipe
from ringpipe.cost.training.spec import RECOMPUTE
from ringpipe.model.config import ModelConfig

#: CUDA context + cuBLAS workspace per GPU (module docstring).
RESERVED_BYTES = 1.5 * GIB
#: NCCL buffers per communicator (module docstring).
NCCL_BYTES_PER_COMMUNICATOR = 128 * 2.0**20
#: Default free memory a configuration must leave (allocator fragmentation, spikes):
#: ``--headroom``.
DEFAULT_HEADROOM_GIB = 4.0


def state_bytes_per_param(dtype: str, recipe: Recipe, dp: int) -> tuple[float, float, float]:
    """(weights, gradients, optimizer) bytes per parameter (module docstring table)."""
    fp16 = dtype == "fp16"
    grads = 4.0 if (recipe.fp32_grads and not fp16) else 2.0
    optimizer = 16.0 if fp16 else 12.0
    if recipe.distributed_optimizer:
        optimizer /= dp
    return 2.0, grads, optimizer


def activation_bytes(model: ModelConfig, batch: int, tp: int, recompute: str,
                     recipe: Recipe, cp: int = 1, fp8: bool = False,
                     moe: MoeShape | None = None) -> float:
    """Activation bytes one layer keeps for the backward (module docstring); with
    context parallelism each rank holds s/cp positions; ``fp8`` keeps the linear layers'
    inputs in FP8; ``moe``: a MoE layer's experts instead of the MLP."""
    if recompute not in RECOMPUTE:
        raise ValueError(f"recompute must be one of {RECOMPUTE}, got {recompute!r}")
    sbh = float(model.seq * batch * model.hidden) / cp
    rep = 1.0 / tp if recipe.sequence_parallel else 1.0
    if recompute == "full":
        return 2.0 * sbh * rep
    masks = 2.0 if model.dropout else 0.0
    linear_in = 1.0 if fp8 else 2.0                     # a GEMM input kept for the backward
    replicated = 4.0 + 2.0 * linear_in + masks
    fh = model.ffn / model.hidden
    if model.gated_mlp:
        mlp = 4.0 * fh + linear_in * fh                  # gate and up outputs, fc2 input
    else:
        mlp = 2.0 * fh + linear_in * fh                  # GeLU input, fc2 input
    sharded = 2.0 * (1 + 2 * model.kv_ratio) + linear_in + (0.0 if moe else mlp)
    if recompute == "selective" and recipe.flash_attention:
        replicated -= 2.0 * linear_in                   # norm outputs, recomputed
        sharded -= 0.0 if moe else linear_in * fh        # activation output, recomputed
    total = sbh * (replicated * rep + sharded / tp)
    if recipe.flash_attention:
        total += 4.0 * model.heads * model.seq * batch / tp / cp   # fp32 log-sum-exp
    elif recompute == "none":
        scores = (5.0 if model.dropout else 2.0) * model.heads * model.seq ** 2 * batch
        total += scores / tp / cp
    if moe is not None:
        total += moe.activation_bytes(model, batch, tp, cp, recompute, recipe, fp8)
    return total


def comm_buffer_bytes(model: ModelConfig, batch: int, tp: int, recipe: Recipe,
                      nbytes: int, cp: int = 1) -> float:
    """NCCL buffers of the TP, PP and DP communicators plus the SP gather buffer (of the
    s / cp positions a CP rank holds)."""
    gather = model.seq * batch * model.hidden * nbytes / cp if recipe.sequence_parallel \
        and tp > 1 else 0.0
    return 3 * NCCL_BYTES_PER_COMMUNICATOR + gather


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per GPU on the fullest pipeline rank (``peak_rank``), by kind."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    comm_buffers: float
    reserved: float
    peak_rank: int = 0
    peak_in_flight: int = 0

    @property
    def states(self) -> float:
        """weights + gradients + optimizer state."""
        return self.weights + self.gradients + self.optimizer

    @property
    def total(self) -> float:
        """Everything the GPU holds at the peak."""
        return self.states + self.activations + self.comm_buffers + self.reserved

    def to_dict(self) -> dict[str, Any]:
        """GiB per kind, the total, and the peak pipeline rank."""
        return {"weights_gib": self.weights / GIB, "gradients_gib": self.gradients / GIB,
                "optimizer_gib": self.optimizer / GIB,
                "activations_gib": self.activations / GIB,
                "comm_buffers_gib": self.comm_buffers / GIB,
                "reserved_gib": self.reserved / GIB, "total_gib": self.total / GIB,
                "peak_pipeline_rank": self.peak_rank,
                "peak_in_flight_microbatches": self.peak_in_flight}

    def describe(self) -> str:
        """One line: the parts in GiB and where the peak is."""
        return (f"{self.total / GIB:.1f} GiB on pipeline rank {self.peak_rank} = weights "
                f"{self.weights / GIB:.1f} + gradients {self.gradients / GIB:.1f} + "
                f"optimizer {self.optimizer / GIB:.1f} + activations "
                f"{self.activations / GIB:.1f} (at most {self.peak_in_flight} stage "
                f"activations held, one per (stage, micro-batch)) + comm buffers "
                f"{self.comm_buffers / GIB:.1f}"
                + (f" + reserve {self.reserved / GIB:.1f}" if self.reserved else ""))
