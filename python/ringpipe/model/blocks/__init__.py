"""The layers of a pipeline stage over a TP group: input layer, blocks, head.

* :mod:`.transformer`: the input layer, the transformer / MLP block and the head, forward
  and the split (I / W) backward, over per-rank lists (re-exported here: the stage
  calls ``blocks.block_forward`` and friends);
* :mod:`.mlp`: the dense MLP (GeLU or SwiGLU), TP-split;
* :mod:`.ring_attention`: context parallelism's ring attention and the load-balanced
  sequence split;
* :mod:`.comm`: :class:`~.comm.LayerComm`, the communication the layers call (TP
  all-reduce, the CP ring's steps, the EP all-to-all);
* :mod:`.weight_jobs`: the deferred weight gradients of the W pass.

The MoE block is :mod:`ringpipe.model.moe`.
"""

from ringpipe.model.blocks.transformer import (
    Shards,
    WeightJob,
    block_backward_input,
    block_forward,
    head_backward_input,
    head_forward,
    input_backward,
    input_forward,
    run_weight_jobs,
)

__all__ = ["Shards", "WeightJob", "block_backward_input", "block_forward", "head_backward_input",
           "head_forward", "input_backward", "input_forward", "run_weight_jobs"]
