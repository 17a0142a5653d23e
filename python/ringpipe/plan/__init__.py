"""Executable plans: what runs, checked and lowered before anything runs.

* :mod:`.training`: :class:`Plan`, a model on a dp × pp × tp mesh driven by a pipeline
  schedule (one training step);
* :mod:`.inference`: :class:`InferencePlan`, greedy generation with a KV cache;
* :mod:`.layout`: :class:`PipelineLayout`, the stages (embedding, k layers, head) the
  runtime executes and the cost model prices, in Megatron's layout syntax, with
  :func:`split_layers` (the even split) and :mod:`.balance` (the balanced split).

``plan.run(...)`` executes on in-process ranks; :func:`ringpipe.runtime.run` on any
runtime, MPI included.
"""

from ringpipe.plan.inference import InferencePlan
from ringpipe.plan.layout import LayoutStage, PipelineLayout, split_layers, stage_bounds
from ringpipe.plan.training import PLAN_BACKENDS, Plan
from ringpipe.runtime.groups import ALLREDUCE_ALGORITHMS
from ringpipe.runtime.result import Batch, PlanResult, RankCounters

__all__ = ["ALLREDUCE_ALGORITHMS", "PLAN_BACKENDS", "Batch", "InferencePlan", "LayoutStage",
           "Plan", "PipelineLayout", "PlanResult", "RankCounters", "split_layers",
           "stage_bounds"]
