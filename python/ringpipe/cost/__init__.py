"""``ringpipe.cost``: predict the step time and memory of TP × PP × DP plans, and rank them.

* :mod:`.cluster` — the cluster (GPUs, HBM, intra- and inter-node links), presets, files;
* :mod:`.models` — the model's shape and training settings, FLOPs and activation bytes;
* :mod:`.collective_cost` — α-β collective costs read off the kernels' step tables, and
  :func:`choose_algorithm` for ``algorithm="auto"``;
* :mod:`.pipeline` — the pipeline bubble from the schedule simulator;
* :mod:`.step_time` — step time and memory per GPU of one configuration;
* :mod:`.planner` — enumerate, drop what does not fit, rank, explain;
* :mod:`.megatron_table` — Megatron-LM SC'21 Table 1 and ringpipe's predictions of it.

>>> from ringpipe.cost import cluster_preset, model_preset, TrainingSpec, plan
>>> report = plan(model_preset("llama2-7b"), TrainingSpec(64), cluster_preset("dgx-a100"))
>>> report.best.config.tp * report.best.config.pp * report.best.config.dp
8
"""

from ringpipe.cost.cluster import (
    CALIBRATED_FRACTION_OF_PEAK,
    CLUSTER_PRESETS,
    Cluster,
    Link,
    cluster_from_dict,
    cluster_preset,
    load_cluster,
)
from ringpipe.cost.collective_cost import CollectiveCost, CollectiveModel, choose_algorithm
from ringpipe.cost.models import (
    MODEL_PRESETS,
    RECOMPUTE,
    ModelSpec,
    TrainingSpec,
    executed_flops,
    model_preset,
)
from ringpipe.cost.planner import FitsNowhere, PlanReport, SearchSpace, explain, plan
from ringpipe.cost.step_time import Config, Memory, Prediction, StepModel

__all__ = [
    "CALIBRATED_FRACTION_OF_PEAK",
    "CLUSTER_PRESETS",
    "MODEL_PRESETS",
    "RECOMPUTE",
    "Cluster",
    "CollectiveCost",
    "CollectiveModel",
    "Config",
    "FitsNowhere",
    "Link",
    "Memory",
    "ModelSpec",
    "PlanReport",
    "Prediction",
    "SearchSpace",
    "StepModel",
    "TrainingSpec",
    "choose_algorithm",
    "cluster_from_dict",
    "cluster_preset",
    "executed_flops",
    "explain",
    "load_cluster",
    "model_preset",
    "plan",
]
