"""Context parallelism's ring exchange, priced: what the attention does not hide.

Ring attention (Liu et al. 2023; Megatron-core / Transformer Engine CP, the executable
form is :mod:`ringpipe.model.blocks.ring_attention`) runs cp steps per attention layer. At
each step a rank computes its queries against the K/V block it holds (1/cp of its
causal attention work: the load-balanced chunks make every block cost the same) while
the next block travels to it from its ring neighbour — TE double-buffers the
exchange, so it overlaps the block's attention. A step therefore takes
max(compute, transfer); the part of the transfer the compute does not cover is exposed:

* forward: cp-1 transfers of one K/V block, 2 · (b·s/cp) · (g/t) · d · 2 bytes (K and
  V of the rank's tokens for its TP rank's g/t key/value heads):
  exposed = (cp-1) · max(0, t_kv - f/cp), f the layer's attention-core forward;
* backward: the blocks travel with their dK/dV accumulators (twice the bytes, t_2kv)
  over cp-1 steps, each overlapped with that block's attention backward b/cp, and a
  last hop brings every block's dK/dV home after the last block's compute:
  exposed = (cp-1) · max(0, t_2kv - b/cp) + t_kv.

A step's transfer t_kv is one step of the ring on the CP group's GPUs, α + S/β at the
link the ring crosses — inside a node when tp · cp fits in it, else at the NIC share of
the GPUs of a node that cross at once (:mod:`ringpipe.cost.training.parallel.groups`): the
ring all-gather's α-β time over cp steps' worth of blocks, divided by its cp-1 steps
(:class:`~ringpipe.cost.hardware.collectives.CollectiveModel`, the same step tables the
runtime executes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ringpipe.cost.training.operators import LayerCosts

__all__ = ["cp_exposed", "kv_block_bytes", "ring_step_time"]


def kv_block_bytes(costs: LayerCosts, batch: int) -> float:
    """Bytes of one K/V block a rank passes on: 2 · (b·s/cp) · (g/t) · d · 2."""
    mdl = costs.model
    kv_heads = max(mdl.kv_heads / costs.tp, 1.0)  # type: ignore[operator]
    return 2.0 * costs.tokens(batch) * kv_heads * mdl.head_dim * costs.nbytes  # type: ignore[operator]


def ring_step_time(costs: LayerCosts, nbytes: float) -> float:
    """One ring step of ``nbytes`` per rank over the CP group (module docstring)."""
    groups = costs.groups
    if groups is None:
        raise ValueError("context parallelism needs the configuration's groups (LayerCosts"
                         ".groups)")
    cp_group = groups.groups["cp"]
    concurrent = groups.crossers["cp"] or None
    full = costs.comms.cost("all_gather", "ring", costs.cp * nbytes, cp_group,
                            concurrent_per_node=concurrent)
    return full.time / (costs.cp - 1)


def cp_exposed(costs: LayerCosts, batch: int, core_forward: float,
               core_backward: float) -> tuple[float, float]:
    """(forward, backward) seconds of the ring exchange left exposed (module docstring)."""
    cp = costs.cp
    kv = kv_block_bytes(costs, batch)
    step, with_grads = ring_step_time(costs, kv), ring_step_time(costs, 2 * kv)
    forward = (cp - 1) * max(0.0, step - core_forward / cp)
    backward = (cp - 1) * max(0.0, with_grads - core_backward / cp) + step
    return forward, backward
