"""The balanced split of a priced configuration, and the buffers every rank holds.

:func:`balanced_layout` feeds :func:`ringpipe.plan.balance.balanced_counts` (through
:meth:`~ringpipe.plan.layout.PipelineLayout.balanced`, the split ``Plan`` runs) with the
planner's own numbers: seconds of one layer, of the embedding and of the head (forward +
input gradient + weight gradient, :mod:`.operators`), the schedule's placement, and the
memory cap (GPU memory less the headroom) with what one more layer costs on each stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ringpipe.cost.training.memory import (
    NCCL_BYTES_PER_COMMUNICATOR,
    RESERVED_BYTES,
    activation_bytes,
    comm_buffer_bytes,
    state_bytes_per_param,
)
from ringpipe.cost.training.prediction import Config
from ringpipe.cost.training.rank_memory import (
    layer_state_bytes,
    moe_shape,
    stage_activation_bytes,
)
from ringpipe.cost.training.spec import TrainingSpec
from ringpipe.model.config import ModelConfig
from ringpipe.plan.layout import LayoutStage, PipelineLayout

if TYPE_CHECKING:
    from ringpipe.cost.training.step_time import StepModel

__all__ = ["balanced_layout", "buffer_bytes"]


def buffer_bytes(model: ModelConfig, training: TrainingSpec, config: Config) -> float:
    """NCCL buffers, the SP gather buffer and, with pp > 1, one activation and one
    gradient message being received (:mod:`.memory`), per CP rank; one more NCCL
    communicator for the CP ring, two for EP and EDP."""
    t, b = config.tp, config.microbatch_size
    buffers = comm_buffer_bytes(model, b, t, training.recipe, training.dtype_bytes, config.cp)
    buffers += ((config.cp > 1) + 2 * (config.ep > 1)) * NCCL_BYTES_PER_COMMUNICATOR
    if config.pp > 1:
        rep = t if training.recipe.sequence_parallel else 1
        buffers += 2.0 * model.seq * b * model.hidden * training.dtype_bytes / rep / config.cp
    return buffers


def balanced_layout(step: StepModel, config: Config, m: int,
                    placement: tuple[int, ...]) -> PipelineLayout:
    """The balanced split (:mod:`ringpipe.plan.balance`) with this model's seconds per
    layer, embedding and head (forward + input + weight gradient) and, as the memory
    cap, the GPU's memory less the headroom; one layer on stage s costs its states and
    its activations times the micro-batches stage s holds at once. Without a split
    that fits, the balanced split ignoring memory (the memory check then says so)."""
    mdl, tr, t, b = step.model, step.training, config.tp, config.microbatch_size
    costs = step._layer_costs(config)
    one = costs.layer(b, config.recompute, moe=mdl.is_moe)  # a MoE model: its MoE layers
    emb, head = costs.embedding(b), costs.head(b)

    def total(x: object) -> float:
        return x.forward + x.backward_input + x.backward_weight  # type: ignore[attr-defined]

    stages = len(placement)
    counts = step.sim.peak_per_stage(config.schedule, config.pp, m, config.chunks)
    w, g, o = state_bytes_per_param(tr.dtype, tr.recipe, config.dp * config.cp)
    per_param = (w + g + o) / t
    act = activation_bytes(mdl, b, t, config.recompute, tr.recipe, config.cp, tr.fp8,
                           moe_shape(step, config))
    ends = PipelineLayout((LayoutStage(True, 0, False), LayoutStage(False, 0, True)))
    fixed_stage = stage_activation_bytes(step, config, ends)
    fixed = [buffer_bytes(step.model, step.training, config) + RESERVED_BYTES] * config.pp
    fixed[placement[0]] += mdl.embedding_params * per_param + counts[0] * fixed_stage.held[0]
    fixed[placement[-1]] += (mdl.output_params + mdl.norm_params) * per_param \
        + counts[-1] * fixed_stage.held[-1] + fixed_stage.transient[-1]
    kw = dict(layer_cost=total(one), embedding_cost=total(emb), head_cost=total(head),
              placement=placement)
    try:
        return PipelineLayout.balanced(
            mdl.layers, stages, **kw, fixed_memory=fixed,
            layer_memory=[layer_state_bytes(step, config) + counts[s] * act
                          for s in range(stages)],
            memory_cap=max(0.0, step.cluster.memory_bytes - step.headroom))
    except ValueError:
        return PipelineLayout.balanced(mdl.layers, stages, **kw)
