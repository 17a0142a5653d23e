"""``schedule="synth"`` (``--schedule auto``) in the planner: the schedule synthesised for
one configuration's own stage costs and memory.

For a configuration with p ranks, v stages per rank and m micro-batches:

1. the stages are laid out as for any schedule (an explicit layout, the even split, or
   the balanced one, here balancing the stages' own seconds without a placement, since
   the synthesiser chooses the placement);
2. each stage's forward, input-gradient and weight-gradient seconds (:mod:`.operators`)
   and the stage-to-stage message time form the cost vector; each stage's held and
   pending activation bytes (:mod:`.stages`) are the memory per micro-batch;
3. the cap, the same on every rank, is the GPU memory less the headroom, the reserve,
   the buffers and the fullest rank's weights, gradients and optimizer state under a
   one-stage-per-rank or interleaved placement (the synthesiser may choose the V, whose
   ranks are fuller at the ends and emptier in the middle: the memory check that follows
   uses the placement it chose), or less: ``Config.activation_cap`` micro-batches of the
   fullest stage's activations (the zero-bubble paper's M_limit);
4. :func:`ringpipe.schedules.synthesis_report` searches :data:`BUDGET` list schedules
   (not the fixed schedules: the planner prices those anyway, next to it); the result is
   registered with the pipeline simulator, which then times it and walks its memory like
   any schedule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ringpipe.cost.training.memory import RESERVED_BYTES
from ringpipe.cost.training.operators import stage_costs
from ringpipe.cost.training.pipeline.split import buffer_bytes
from ringpipe.cost.training.pipeline.stages import StageLayout
from ringpipe.cost.training.prediction import Config
from ringpipe.cost.training.rank_memory import rank_state_bytes, stage_activation_bytes
from ringpipe.plan.layout import PipelineLayout
from ringpipe.schedules import CostModel, synthesis_report
from ringpipe.schedules.actions import interleaved_placement

if TYPE_CHECKING:
    from ringpipe.cost.training.step_time import StepModel

__all__ = ["BUDGET", "synth_layout"]

#: List schedules the planner tries per configuration (the CLI's default is 400).
BUDGET = 12


def synth_layout(step: StepModel, config: Config, m: int) -> StageLayout:
    """The synthesised schedule's stage layout for ``config`` (module docstring)."""
    mdl, tr, b = step.model, step.training, config.microbatch_size
    p, v = config.pp, config.chunks
    stages = p * v
    costs = step._layer_costs(config)
    if config.layout is not None:
        layout = config.layout.check(mdl.layers, stages)
    elif config.split == "balanced":
        one, emb, head = (costs.layer(b, config.recompute, moe=mdl.is_moe), costs.embedding(b),
                          costs.head(b))

        def total(x: object) -> float:
            return x.forward + x.backward_input + x.backward_weight  # type: ignore[attr-defined]

        layout = PipelineLayout.balanced(mdl.layers, stages, layer_cost=total(one),
                                         embedding_cost=total(emb), head_cost=total(head))
    else:
        layout = PipelineLayout.even(mdl.layers, stages)
    ops, _ = stage_costs(costs, b, config.recompute, layout)
    model = CostModel(forward=[o.forward for o in ops],
                      backward_input=[o.backward_input for o in ops],
                      backward_weight=[o.backward_weight for o in ops],
                      p2p_latency=step.message_time(config))
    per = stage_activation_bytes(step, config, layout)
    provisional = StageLayout(m, layout, interleaved_placement(p, v))
    states = max(rank_state_bytes(step, config, provisional))
    cap = step.cluster.memory_bytes - step.headroom - RESERVED_BYTES - states \
        - buffer_bytes(mdl, tr, config) - max(per.transient)
    if config.activation_cap is not None:
        cap = min(cap, config.activation_cap * max(per.held))
    kw = dict(activation=per.held, pending=per.pending, budget=BUDGET, compare=False)
    try:
        report = synthesis_report(model, max(cap, 0.0), p, m, v, **kw)
    except ValueError:  # not even one micro-batch fits: the memory check will say so
        report = synthesis_report(model, None, p, m, v, **kw)
    key = step.sim.adopt(report.schedule)
    return StageLayout(m, layout, report.schedule.placement, key)
