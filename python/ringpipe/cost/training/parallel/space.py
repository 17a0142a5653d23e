"""The search's context- and expert-parallel dimensions: which meshes it prices.

A mesh is dp × pp × cp × tp GPUs (:mod:`ringpipe.mesh`); MoE models add the expert grid
(ep, etp) carved from each pipeline position's dp · cp · tp ranks. The search
(:mod:`ringpipe.cost.training.search`) prices, for every (tp, pp, dp) factorisation of
``world / cp`` (:func:`~ringpipe.cost.training.search.factorisations`):

* **cp** — 1, and every divisor c of the GPUs left by TP with 2·c dividing the sequence
  and each rank keeping at least :data:`MIN_CP_POSITIONS` positions (shorter chunks
  leave most of the ring's transfer exposed, and the search stays fast); ``--cp`` pins
  it to one value, any that divides the sequence into 2·cp chunks;
* **ep, etp** (MoE models only) — etp = tp (Megatron-core's default
  ``expert_tensor_parallel_size``) and, with tp > 1, etp = 1 (the layout Megatron-core
  recommends for fine-grained experts), each with every ep that divides both the
  experts and dp · cp · tp / etp; ``--ep`` pins ep (``SearchSpace.etp`` pins etp). A
  dense model has ep = 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig

if TYPE_CHECKING:
    from ringpipe.cost.training.search import SearchSpace

__all__ = ["MIN_CP_POSITIONS", "cp_options", "expert_options"]

#: The fewest sequence positions a CP rank keeps in a searched configuration.
MIN_CP_POSITIONS = 4096


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def cp_options(model: ModelConfig, world: int, space: SearchSpace) -> list[int]:
    """The CP sizes to price on ``world`` GPUs (module docstring)."""
    if space.cp is not None:
        if world % space.cp:
            raise ValueError(f"cp={space.cp} does not divide the cluster's {world} GPUs")
        if model.seq % (2 * space.cp):
            raise ValueError(f"cp={space.cp}: the sequence {model.seq} does not split into "
                             f"2 × cp = {2 * space.cp} equal chunks")
        return [space.cp]
    if not model.has_attention:
        return [1]
    return [c for c in _divisors(world) if c == 1 or (
        model.seq % (2 * c) == 0 and model.seq // c >= MIN_CP_POSITIONS)]


def expert_options(model: ModelConfig, tp: int, cp: int, dp: int,
                   space: SearchSpace) -> list[tuple[int, int]]:
    """(ep, etp) pairs to price for a (tp, cp, dp) layout (module docstring)."""
    if not model.is_moe:
        if space.ep not in (None, 1):
            raise ValueError(f"ep={space.ep} needs a mixture-of-experts model (--experts)")
        return [(1, tp)]
    out = []
    for etp in sorted({tp, 1} if space.etp is None else {space.etp}, reverse=True):
        ranks = dp * cp * tp // etp
        for ep in _divisors(ranks):
            if model.experts % ep or space.ep not in (None, ep):
                continue
            if model.moe_ffn % etp:  # type: ignore[operator]
                continue
            out.append((ep, etp))
    return out


def mesh_of(dp: int, pp: int, tp: int, cp: int, ep: int, etp: int) -> Mesh:
    """The Mesh of one searched point."""
    return Mesh(dp=dp, pp=pp, tp=tp, cp=cp, ep=ep, etp=etp)
