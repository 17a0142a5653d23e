"""FP8 training: what the planner charges for Transformer Engine's FP8 recipe.

``--dtype fp8`` prices the recipe Megatron-core runs with Transformer Engine (TE)'s
delayed scaling (Micikevicius et al. 2022, "FP8 Formats for Deep Learning"; NVIDIA TE
documentation, "Using FP8 with Transformer Engine"):

* **GEMMs** of the linear layers (QKV, output projection, MLP, experts) take FP8 inputs
  and run at the GPU's FP8 rate, ``fp8_ratio`` × the 16-bit one
  (:class:`~ringpipe.cost.hardware.gpu.GpuKernels`; 2 on H100/H200); their operands
  move 1 byte per element. A GPU without FP8 tensor cores (``fp8_ratio`` 0: A100) is
  refused, as TE refuses it. Attention (FlashAttention in 16 bits), the router and the
  logit layer stay in 16 bits.
* **Scaling**: every FP8 GEMM input is cast first — in the forward the activation
  (read 2, write 1 byte per element), in the backward the output gradient, and for the
  weight gradient the cast input's transpose (1 more byte); each weight is cast, with
  its transpose, once per step (read 2, write 1 + 1 bytes per parameter: TE caches it
  for later micro-batches). The amax reductions of delayed scaling are a few scalars
  per tensor and are not charged.
* **Memory**: the linear layers save their FP8-cast inputs for the backward instead of
  16-bit ones (half the bytes of the QKV, projection and MLP inputs), and each rank
  keeps the FP8 weights and their transposes beside the 16-bit ones (2 bytes per
  matmul parameter). Master weights, gradients and Adam state are as in 16-bit
  mixed precision; activations and messages between ranks stay 16-bit.
"""

from __future__ import annotations

from ringpipe.cost.hardware.cluster import Cluster

__all__ = ["CAST_BYTES", "FP8_WEIGHT_COPY_BYTES", "WEIGHT_CAST_BYTES", "check_fp8",
           "gemm_rate"]

#: Bytes moved per element to cast a 16-bit tensor to FP8 (read 2, write 1).
CAST_BYTES = 3.0
#: Bytes moved per weight per step: read 2, write the FP8 copy and its transpose.
WEIGHT_CAST_BYTES = 4.0
#: Extra bytes each matmul parameter holds: its FP8 copy and transpose.
FP8_WEIGHT_COPY_BYTES = 2.0


def check_fp8(cluster: Cluster) -> None:
    """ValueError unless the cluster's GPUs have FP8 tensor cores."""
    if cluster.kernels.fp8_ratio <= 0:
        raise ValueError(f"--dtype fp8: {cluster.name} has no FP8 tensor cores (its "
                         "[kernels] fp8_ratio is 0); Transformer Engine runs FP8 on Hopper "
                         "and later (dgx-h100, dgx-h200)")


def gemm_rate(cluster: Cluster, fp8: bool) -> float:
    """The rate (FLOP/s) a large linear-layer GEMM sustains: η_max · peak, × fp8_ratio
    in FP8."""
    return cluster.achievable_flops * (cluster.kernels.fp8_ratio if fp8 else 1.0)
