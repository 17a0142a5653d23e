"""The training cost model: price one TP × CP × PP × DP (× EP) configuration, search them all.

* :mod:`.spec`: :class:`TrainingSpec` (global batch, micro-batch, dtype, recompute) and
  the FLOPs one step executes;
* :mod:`.recipe`: the recipe (sequence parallelism, flash attention, distributed
  optimizer, overlap), today's Megatron-LM by default;
* :mod:`.operators`: one layer as its operators on one TP rank;
* :mod:`.memory`: model states and activations per GPU; :mod:`.rank_memory`: what each
  pipeline rank holds (dense and expert parameters, memory);
* :mod:`.pipeline.stages`: each stage's parameters and activation bytes (embedding,
  logits, the weight-gradient state), the layout priced; :mod:`.pipeline.split`: the
  balanced split with the planner's own costs and memory; :mod:`.pipeline.synth`: the
  synthesised schedule (``auto``);
* :mod:`.optimes`: seconds per micro-batch by pass;
* :mod:`.parallel`: context parallelism, MoE / expert parallelism and FP8;
* :mod:`.pipeline.simulator`: the pipeline's timing and per-rank memory from the schedule
  simulator;
* :mod:`.prediction`: :class:`Config` (one search point) and :class:`StepPrediction`;
* :mod:`.step_time`: :class:`StepModel`, ``predict(config) -> StepPrediction``;
* :mod:`.search`: enumerate (:mod:`.pipeline.options`: schedules, v and splits per pp), drop what
  does not fit, rank; :mod:`.explain`: why.
"""

from ringpipe.cost.training.prediction import Config, StepPrediction
from ringpipe.cost.training.search import SearchReport, search
from ringpipe.cost.training.spec import TrainingSpec
from ringpipe.cost.training.step_time import StepModel

__all__ = ["Config", "SearchReport", "StepModel", "StepPrediction", "TrainingSpec", "search"]
