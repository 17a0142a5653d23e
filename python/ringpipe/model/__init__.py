"""The model maths: a NumPy reference model and its tensor-parallel stage computations.

- :mod:`.config`: :class:`ModelConfig` (shape, block kind, norm, dtype);
- :mod:`.params`: parameter names / shapes / layout and :func:`init_params`;
- :mod:`.functional`: rank-local maths (norms, GeLU, causal attention, losses);
- :mod:`.reference`: :func:`reference_forward_backward`, the single-device model;
- :mod:`.layers`: column / row-parallel linear layers and Megatron's f / g;
- :mod:`.sharding`: :func:`shard_params` / :func:`gather_grads`;
- :mod:`.blocks` and :mod:`.stage`: a pipeline stage over a TP group, forward and the
  split (I / W) backward;
- :mod:`.kv_cache`, :mod:`.generate` and :mod:`.inference_stage`: the KV cache, the
  greedy generation reference :func:`generate`, and a stage's TP prefill/decode.
"""

from ringpipe.model.config import ModelConfig
from ringpipe.model.generate import GenerateResult, generate
from ringpipe.model.layers import AllReduce
from ringpipe.model.params import init_params, param_shapes
from ringpipe.model.reference import ReferenceResult, reference_forward_backward
from ringpipe.model.sharding import gather_grads, shard_param_shapes, shard_params, split_axis
from ringpipe.model.stage import (
    StageCache,
    StageSpec,
    WeightCache,
    stage_backward,
    stage_backward_input,
    stage_backward_weight,
    stage_forward,
)

__all__ = [
    "AllReduce",
    "GenerateResult",
    "ModelConfig",
    "ReferenceResult",
    "StageCache",
    "StageSpec",
    "WeightCache",
    "gather_grads",
    "generate",
    "init_params",
    "param_shapes",
    "reference_forward_backward",
    "shard_param_shapes",
    "shard_params",
    "split_axis",
    "stage_backward",
    "stage_backward_input",
    "stage_backward_weight",
    "stage_forward",
]
