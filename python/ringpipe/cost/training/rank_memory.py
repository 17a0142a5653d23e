"""What each pipeline rank's GPUs hold with CP, EP and FP8: parameters, states, memory.

Parameters per GPU of pipeline rank p: its stages' layers, the embedding where the
layout puts it, the final norm and output layer where it puts the head (a tied output
layer on the embedding's rank is counted once; :mod:`.stages`). The **dense** ones are
split over the TP ranks and replicated over DP × CP; a MoE layer's **expert** weights
(E · 3 · h · f_e) are split over the ep × etp ranks of the expert grid and replicated
over its edp ranks (:mod:`ringpipe.mesh`). The distributed optimizer shards each kind's
fp32 state over the ranks that hold copies: DP × CP for the dense, EDP for the expert
weights (Megatron-core's ``expt_dp`` group). FP8 adds the FP8 weight copies and
transposes (:mod:`ringpipe.cost.training.parallel.fp8`).

Memory per GPU (:class:`~ringpipe.cost.training.memory.MemoryBreakdown`) on the fullest
pipeline rank: those states; the activations each rank holds at the schedule's own
peak, walked stage by stage (:meth:`~.pipeline.PipelineSimulator.peak_bytes` with
:func:`~.stages.stage_bytes`, per CP rank, each layer dense or MoE), plus, under full
recomputation, the layer being recomputed; the communication buffers (one more NCCL
communicator for the CP ring, two for EP and EDP; :func:`.split.buffer_bytes`) and the
reserve (none for a CPU process: no CUDA context nor cuBLAS workspace).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ringpipe.cost.training.memory import (
    RESERVED_BYTES,
    MemoryBreakdown,
    activation_bytes,
    state_bytes_per_param,
)
from ringpipe.cost.training.parallel.experts import MoeShape
from ringpipe.cost.training.parallel.fp8 import FP8_WEIGHT_COPY_BYTES
from ringpipe.cost.training.pipeline.stages import StageBytes, StageLayout, rank_params, stage_bytes
from ringpipe.plan.layout import PipelineLayout

if TYPE_CHECKING:
    from ringpipe.cost.training.prediction import Config
    from ringpipe.cost.training.step_time import StepModel

__all__ = ["layer_state_bytes", "moe_shape", "rank_memory", "rank_param_split",
           "rank_state_bytes", "stage_activation_bytes"]


def moe_shape(step: StepModel, config: Config) -> MoeShape | None:
    """How ``config`` runs the MoE layers (None for a dense model)."""
    if not step.model.is_moe:
        return None
    return MoeShape(config.etp, step.training.moe_imbalance)


def stage_activation_bytes(step: StepModel, config: Config,
                           stages: PipelineLayout) -> StageBytes:
    """Held, pending and transient bytes per stage on one GPU (:func:`.stages.stage_bytes`
    with ``config``'s cp, the recipe's FP8 and the MoE layers)."""
    tr = step.training
    return stage_bytes(step.model, config.microbatch_size, config.tp, config.recompute,
                       tr.recipe, stages, tr.dtype_bytes, config.cp, tr.fp8,
                       moe_shape(step, config))


def rank_param_split(step: StepModel, config: Config,
                     layout: StageLayout) -> list[tuple[float, float]]:
    """(dense, expert) parameters per GPU of every pipeline rank (module docstring)."""
    mdl = step.model
    dense = rank_params(mdl, layout, config.pp, config.tp)
    if not mdl.is_moe:
        return [(d, 0.0) for d in dense]
    expert_layer = mdl.experts * mdl.expert_params
    bounds = layout.stages.bounds
    out = []
    for rank, params in enumerate(dense):
        layers = [i for s in layout.stages_of(rank) for i in range(bounds[s], bounds[s + 1])]
        moe = sum(mdl.is_moe_layer(i) for i in layers)
        # rank_params counted every layer dense: swap the MoE layers' in
        extra = sum(mdl.layer_params(i) - mdl.params_per_layer for i in layers)
        out.append((params + (extra - moe * expert_layer) / config.tp,
                    moe * expert_layer / (config.ep * config.etp)))
    return out


def _per_param(step: StepModel, config: Config) -> tuple[tuple[float, float, float],
                                                          tuple[float, float, float]]:
    """(weight, gradient, optimizer) bytes per dense and per expert parameter."""
    tr = step.training
    w, g, o = state_bytes_per_param(tr.dtype, tr.recipe, config.dp * config.cp)
    _, ge, oe = state_bytes_per_param(tr.dtype, tr.recipe, config.mesh.edp)
    copies = FP8_WEIGHT_COPY_BYTES if tr.fp8 else 0.0
    return (w + copies, g, o), (w + copies, ge, oe)


def rank_state_bytes(step: StepModel, config: Config, layout: StageLayout) -> list[float]:
    """Weights, gradients and optimizer state per GPU of every pipeline rank."""
    dense, expert = _per_param(step, config)
    return [d * sum(dense) + e * sum(expert)
            for d, e in step.rank_param_split(config, layout)]


def layer_state_bytes(step: StepModel, config: Config) -> float:
    """States per GPU of one layer (a MoE layer in a MoE model): what one more layer on a
    stage costs beside its activations (the balanced split)."""
    mdl = step.model
    dense, expert = _per_param(step, config)
    if not mdl.is_moe:
        return mdl.params_per_layer * (sum(dense) / config.tp)
    experts = mdl.experts * mdl.expert_params
    return (mdl.moe_params_per_layer - experts) * sum(dense) / config.tp \
        + experts * sum(expert) / (config.ep * config.etp)


def rank_memory(step: StepModel, config: Config, layout: StageLayout) -> MemoryBreakdown:
    """Memory per GPU of ``config`` on its fullest pipeline rank (module docstring)."""
    mdl, tr, t, b = step.model, step.training, config.tp, config.microbatch_size
    peaks = step.peak_in_flight(config, layout)
    per = stage_activation_bytes(step, config, layout.stages)
    acts = step.sim.peak_bytes(layout.key, config.pp, layout.microbatches, config.chunks,
                               per.held, per.pending, per.transient)
    (w, g, o), (we, ge, oe) = _per_param(step, config)
    buffers = step._buffers(config)
    moe = moe_shape(step, config)
    # a CPU process has no CUDA context nor cuBLAS workspace to reserve
    reserved = 0.0 if step.cluster.device == "cpu" else RESERVED_BYTES
    worst: MemoryBreakdown | None = None
    for rank, (dense, expert) in enumerate(step.rank_param_split(config, layout)):
        held = acts[rank]
        if config.recompute == "full" and any(layout.layers[s]
                                              for s in layout.stages_of(rank)):
            held += activation_bytes(mdl, b, t, "none", tr.recipe, config.cp, tr.fp8,
                                     moe)  # being recomputed
        mem = MemoryBreakdown(dense * w + expert * we, dense * g + expert * ge,
                              dense * o + expert * oe, held, buffers, reserved, rank,
                              peaks[rank])
        if worst is None or mem.total > worst.total:
            worst = mem
    assert worst is not None
    return worst
