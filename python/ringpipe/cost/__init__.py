"""``ringpipe.cost``: predict the step time and memory of TP × PP × DP plans, and rank them.

* :mod:`.cluster` — the cluster (GPUs, HBM, intra- and inter-node links), presets;
  :mod:`.cluster_file` — cluster files into a Cluster, through the one reader
  :mod:`.cluster_reader` and the key checks of :mod:`.file_section`;
  :mod:`.calibrated` — calibrated files (their ``[measured]`` table:
  :mod:`.measured_table`; the constants: :mod:`.calibration`);
* :mod:`.models` — the model's shape and training settings, FLOPs;
* :mod:`.recipe` — the training recipe (sequence parallelism, flash attention,
  distributed optimizer, overlap), defaulting to today's Megatron-LM;
* :mod:`.gpu` — kernel times: GEMM roofline with wave quantisation, flash attention,
  memory-bound kernels, launch overhead;
* :mod:`.operators` — one layer as its operators on one TP rank;
* :mod:`.memory` — model states and activations per GPU, the breakdown;
* :mod:`.collective_cost` — α-β collective costs read off the kernels' step tables, and
  :func:`choose_algorithm` for ``algorithm="auto"``;
* :mod:`.pipeline` — the pipeline bubble from the schedule simulator;
* :mod:`.prediction` — :class:`Config` (a Mesh, schedule, micro-batch, recompute) and
  :class:`Prediction`;
* :mod:`.step_time` — step time and memory per GPU of one configuration;
* :mod:`.planner` — enumerate, drop what does not fit, rank; :mod:`.explain` — why;
* :mod:`.megatron_table` — Megatron-LM SC'21 Table 1 (the calibration data);
* :mod:`.validate` — out-of-sample published measurements
  (``python -m ringpipe.cost.published.validate``).

>>> from ringpipe.cost import cluster_preset, model_preset, TrainingSpec, search
>>> report = search(model_preset("llama2-7b"), TrainingSpec(64), cluster_preset("dgx-a100"))
>>> report.best.config.mesh.world
8
"""

import warnings

from ringpipe.cost.clusterfile.load import ClusterFile, load_cluster_file, read_cluster
from ringpipe.cost.hardware.cluster import (
    CALIBRATED_FRACTION_OF_PEAK,
    CLUSTER_PRESETS,
    Cluster,
    Link,
    cluster_preset,
)
from ringpipe.cost.hardware.collectives import CollectiveCost, CollectiveModel, choose_algorithm
from ringpipe.cost.prediction import Prediction, Predictor
from ringpipe.cost.training.explain import explain
from ringpipe.cost.training.memory import MemoryBreakdown
from ringpipe.cost.training.prediction import Config, StepPrediction
from ringpipe.cost.training.recipe import MEGATRON, SC21, Recipe
from ringpipe.cost.training.search import FitsNowhere, SearchReport, SearchSpace, search
from ringpipe.cost.training.spec import RECOMPUTE, TrainingSpec, executed_flops
from ringpipe.cost.training.step_time import StepModel
from ringpipe.model.config import ModelConfig
from ringpipe.model.presets import MODEL_PRESETS, model_preset

__all__ = [
    "CALIBRATED_FRACTION_OF_PEAK",
    "CLUSTER_PRESETS",
    "MODEL_PRESETS",
    "RECOMPUTE",
    "Cluster",
    "CollectiveCost",
    "CollectiveModel",
    "ClusterFile",
    "Config",
    "FitsNowhere",
    "Link",
    "MEGATRON",
    "MemoryBreakdown",
    "SearchReport",
    "Prediction",
    "Predictor",
    "Recipe",
    "SC21",
    "SearchSpace",
    "StepModel",
    "StepPrediction",
    "TrainingSpec",
    "choose_algorithm",
    "cluster_preset",
    "executed_flops",
    "explain",
    "load_cluster_file",
    "read_cluster",
    "model_preset",
    "SearchReport",
    "search",
]


def _model_spec(name: str, layers: int, hidden: int, heads: int, seq: int, vocab: int,
                ffn: int = 0, kv_heads: int = 0, gated_mlp: bool = False,
                tied_embeddings: bool = True, learned_positions: bool = False,
                dropout: bool = True) -> ModelConfig:
    """The former ``ModelSpec(...)``: the same model as a :class:`ModelConfig` (GPT-style
    LayerNorm and biases, or with ``gated_mlp`` Llama-style RMSNorm without biases)."""
    return ModelConfig(name=name, layers=layers, hidden=hidden, heads=heads, seq=seq,
                       vocab=vocab, ffn=ffn or None, kv_heads=kv_heads or None,
                       norm="rmsnorm" if gated_mlp else "layernorm", biases=not gated_mlp,
                       gated_mlp=gated_mlp, tied_embeddings=tied_embeddings,
                       learned_positions=learned_positions, dropout=dropout)


#: Earlier public names, kept working with a warning: name -> (object, what to use).
_RENAMED = {"ModelSpec": (_model_spec, "ringpipe.model.ModelConfig (presets: "
                                       "ringpipe.model.presets)"),
            "plan": (search, "ringpipe.cost.search (a Plan is what runs; the planner "
                             "searches for one)"),
            "PlanReport": (SearchReport, "ringpipe.cost.SearchReport"),
            "load_cluster": (lambda path, nodes=None: load_cluster_file(path, nodes).cluster,
                             "ringpipe.cost.load_cluster_file(path, nodes).cluster"),
            "cluster_from_dict": (lambda data, nodes=None, source="cluster file":
                                  read_cluster(data, nodes, source).cluster,
                                  "ringpipe.cost.read_cluster(data, nodes).cluster")}


def __getattr__(name: str) -> object:
    """Earlier names (``ModelSpec``, ``plan``, ``PlanReport``, ``load_cluster``,
    ``cluster_from_dict``) still work, with a FutureWarning naming what replaced them
    (shown once per calling line)."""
    if name in _RENAMED:
        value, instead = _RENAMED[name]
        warnings.warn(f"ringpipe.cost.{name} is deprecated; use {instead}", FutureWarning,
                      stacklevel=2)
        return value
    raise AttributeError(f"module 'ringpipe.cost' has no attribute {name!r}")
