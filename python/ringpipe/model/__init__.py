"""The model: one description, a NumPy reference model and its tensor-parallel stages.

- :mod:`.config`: :class:`ModelConfig`, the one description of a model (shape,
  architecture details, mixture-of-experts fields, parameter counts, FLOPs), built here
  and priced by :mod:`ringpipe.cost`; :mod:`.config_checks`: its field checks;
  :mod:`.presets`: published shapes (:func:`model_preset`);
- :mod:`.params`: parameter names / shapes / layout and :func:`init_params`;
- :mod:`.functional`: rank-local maths (norms, GeLU, causal attention, losses);
- :mod:`.reference`: :func:`reference_forward_backward`, the single-device model;
- :mod:`.layers`: column / row-parallel linear layers and Megatron's f / g;
- :mod:`.sharding`: :func:`shard_params` / :func:`gather_grads`;
- :mod:`.blocks` and :mod:`.stage`: a pipeline stage over a TP group, forward and the
  split (I / W) backward; ring attention for context parallelism and the layers'
  communication interface (:class:`~ringpipe.model.blocks.comm.LayerComm`) are in
  :mod:`.blocks`;
- :mod:`.moe`: mixture-of-experts layers (router, SwiGLU experts, dropless dispatch
  and combine through the expert-parallel all-to-all);
- :mod:`.kv_cache`, :mod:`.generate` and :mod:`.inference_stage`: the KV cache, the
  greedy generation reference :func:`generate`, and a stage's TP prefill/decode.
"""

from ringpipe.model.config import ModelConfig
from ringpipe.model.generate import GenerateResult, generate
from ringpipe.model.layers import AllReduce
from ringpipe.model.params import init_params, param_shapes
from ringpipe.model.presets import MODEL_PRESETS, gpt_like, llama_like, model_preset
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
    "MODEL_PRESETS",
    "AllReduce",
    "GenerateResult",
    "ModelConfig",
    "ReferenceResult",
    "StageCache",
    "StageSpec",
    "WeightCache",
    "gather_grads",
    "generate",
    "gpt_like",
    "init_params",
    "llama_like",
    "model_preset",
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
