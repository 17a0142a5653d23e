"""What each pipeline rank's GPUs hold: parameters (dense and expert) and memory.

Parameters per GPU of pipeline rank p: its stages' layers, the embedding with stage 0,
the output layer with the last stage (unless tied on the same rank) and the final norm.
The **dense** ones are split over the TP ranks and replicated over DP × CP; a MoE
layer's **expert** weights (E · 3 · h · f_e) are split over the ep × etp ranks of the
expert grid and replicated over its edp ranks (:mod:`ringpipe.mesh`). The distributed
optimizer shards each kind's fp32 state over the ranks that hold copies: DP × CP for
the dense, EDP for the expert weights (Megatron-core's ``expt_dp`` group).

Memory per GPU (:class:`~ringpipe.cost.training.memory.MemoryBreakdown`) on the fullest
pipeline rank: weights, gradients and optimizer state of both kinds (FP8 adds the FP8
weight copies and transposes, :mod:`ringpipe.cost.training.parallel.fp8`), activations — the
most (stage, micro-batch) pairs it holds at once (the schedule simulator's peak) times
its largest stage's per-micro-batch bytes, each layer dense or MoE, divided by cp —,
the communication buffers (one more NCCL communicator for the CP ring, two for EP and
EDP) and the reserve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ringpipe.cost.training.memory import (
    NCCL_BYTES_PER_COMMUNICATOR,
    RESERVED_BYTES,
    MemoryBreakdown,
    activation_bytes,
    comm_buffer_bytes,
    state_bytes_per_param,
)
from ringpipe.cost.training.parallel.experts import MoeShape
from ringpipe.cost.training.parallel.fp8 import FP8_WEIGHT_COPY_BYTES
from ringpipe.plan.layout import stage_bounds

if TYPE_CHECKING:
    from ringpipe.cost.training.prediction import Config
    from ringpipe.cost.training.step_time import StageLayout, StepModel

__all__ = ["rank_memory", "rank_param_split", "stage_layer_ranges"]


def stage_layer_ranges(layout: StageLayout) -> list[range]:
    """The layer indices of every stage."""
    bounds = stage_bounds(layout.layers)
    return [range(bounds[s], bounds[s + 1]) for s in range(len(layout.layers))]


def rank_param_split(step: StepModel, config: Config,
                     layout: StageLayout) -> list[tuple[float, float]]:
    """(dense, expert) parameters per GPU of every pipeline rank (module docstring)."""
    mdl, last = step.model, len(layout.layers) - 1
    ranges = stage_layer_ranges(layout)
    expert_layer = mdl.experts * mdl.expert_params if mdl.is_moe else 0
    out = []
    for rank in range(config.pp):
        mine = layout.stages_of(rank)
        if mdl.is_moe:
            layers = [i for s in mine for i in ranges[s]]
            moe = sum(mdl.is_moe_layer(i) for i in layers)
            params = sum(mdl.layer_params(i) for i in layers) - moe * expert_layer
        else:
            moe = 0
            params = sum(layout.layers[s] for s in mine) * mdl.params_per_layer
        params += mdl.embedding_params if 0 in mine else 0
        if last in mine and (not mdl.tied_embeddings or 0 not in mine):
            params += mdl.output_params
        params += mdl.norm_params if last in mine else 0  # final norm
        out.append((params / config.tp, moe * expert_layer / (config.ep * config.etp)))
    return out


def rank_memory(step: StepModel, config: Config, layout: StageLayout) -> MemoryBreakdown:
    """Memory per GPU of ``config`` on its fullest pipeline rank (module docstring)."""
    mdl, tr, t, b = step.model, step.training, config.tp, config.microbatch_size
    peaks = step.peak_in_flight(config, layout)
    last = len(layout.layers) - 1
    moe = MoeShape(config.etp, tr.moe_imbalance) if mdl.is_moe else None
    dense_layer = activation_bytes(mdl, b, t, config.recompute, tr.recipe, config.cp, tr.fp8)
    moe_layer = activation_bytes(mdl, b, t, config.recompute, tr.recipe, config.cp, tr.fp8,
                                 moe) if moe is not None else dense_layer
    ranges = stage_layer_ranges(layout)
    per_stage = [sum(moe_layer if mdl.is_moe_layer(i) else dense_layer for i in r)
                 for r in ranges] if mdl.is_moe else None
    w, g, o = state_bytes_per_param(tr.dtype, tr.recipe, config.dp * config.cp)
    _, ge, oe = state_bytes_per_param(tr.dtype, tr.recipe, config.mesh.edp)
    extra = (config.cp > 1) + 2 * (config.ep > 1)
    buffers = comm_buffer_bytes(mdl, b, t, tr.recipe, tr.dtype_bytes, config.cp) \
        + extra * NCCL_BYTES_PER_COMMUNICATOR
    copies = FP8_WEIGHT_COPY_BYTES if tr.fp8 else 0.0
    worst: MemoryBreakdown | None = None
    for rank, (dense, expert) in enumerate(step.rank_param_split(config, layout)):
        mine = layout.stages_of(rank)
        if per_stage is None:
            acts = peaks[rank] * max(layout.layers[s] for s in mine) * dense_layer
        else:
            acts = peaks[rank] * max(per_stage[s] for s in mine)
        if config.recompute == "full":  # the layer being recomputed
            acts += activation_bytes(mdl, b, t, "none", tr.recipe, config.cp, tr.fp8, moe)
        if last in mine:
            acts += 4.0 * b * mdl.seq * mdl.vocab / t / config.cp  # fp32 logits
        weights = dense * w + expert * w + (dense + expert) * copies
        mem = MemoryBreakdown(weights, dense * g + expert * ge, dense * o + expert * oe, acts,
                              buffers, RESERVED_BYTES, rank, peaks[rank])
        if worst is None or mem.total > worst.total:
            worst = mem
    assert worst is not None
    return worst
