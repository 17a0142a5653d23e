"""Which meshes the search prices (:func:`meshes`): tp × pp × dp, cp, and ep × etp.

A mesh is dp × pp × cp × tp GPUs (:mod:`ringpipe.mesh`); MoE models add the expert grid
(ep, etp) carved from each pipeline position's dp · cp · tp ranks. The search
(:mod:`ringpipe.cost.training.search`) prices, for every (tp, pp, dp) factorisation of
``world / cp`` (:func:`factorisations`: tp divides the heads and KV heads, dp the global
batch, and pp·v stages can hold the layers):

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

import math
from typing import TYPE_CHECKING

from ringpipe.cost.training.spec import TrainingSpec
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig

if TYPE_CHECKING:
    from ringpipe.cost.training.search import SearchSpace

__all__ = ["MIN_CP_POSITIONS", "cp_options", "expert_options", "factorisations", "meshes"]

#: The fewest sequence positions a CP rank keeps in a searched configuration.
MIN_CP_POSITIONS = 4096


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


def _divisors(n: int) -> list[int]:
    """The divisors of ``n`` in increasing order, by trial division up to sqrt(n)."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return small + [n // d for d in reversed(small) if d * d != n]


def factorisations(model: ModelConfig, training: TrainingSpec, world: int,
                   space: SearchSpace) -> list[tuple[int, int, int]]:
    """Every (tp, pp, dp) with tp·pp·dp = ``world`` the model, batch and pins allow."""
    pinned = [getattr(space, n) for n in ("tp", "pp", "dp")]
    if all(v is not None for v in pinned) and pinned[0] * pinned[1] * pinned[2] != world:
        raise ValueError(f"tp × pp × dp = {pinned[0]} × {pinned[1]} × {pinned[2]} = "
                         f"{pinned[0] * pinned[1] * pinned[2]} GPUs, but the cluster has {world}")
    given = [(n, v) for n, v in zip(("tp", "pp", "dp"), pinned, strict=True) if v is not None]
    product = math.prod(v for _, v in given)
    if len(given) > 1 and (product > world or world % product):  # 64 > 32, not the rules
        names = " × ".join(n for n, _ in given)
        raise ValueError(f"{names} = {' × '.join(str(v) for _, v in given)} = {product} GPUs, "
                         + (f"but the cluster has {world}" if product > world else
                            f"which does not divide the cluster's {world}"))
    for name in ("tp", "pp", "dp"):
        pin = getattr(space, name)
        if pin is not None and pin > world:
            raise ValueError(f"{name}={pin} needs more GPUs than the cluster's {world}")
        if pin is not None and world % pin:
            raise ValueError(f"{name}={pin} does not divide the cluster's {world} GPUs")
    out = []
    for tp in _divisors(world):
        if model.heads % tp or model.kv_heads % tp or space.tp not in (None, tp):
            continue
        for pp in _divisors(world // tp):
            dp = world // (tp * pp)
            uneven = space.allow_uneven or space.pp is not None or "balanced" in space.splits
            layers_ok = model.layers % pp == 0 or (uneven and pp <= model.layers + 2) \
                or space.layout is not None
            if not layers_ok or training.global_batch % dp or space.pp not in (None, pp) \
                    or space.dp not in (None, dp):
                continue
            out.append((tp, pp, dp))
    if not out:
        pins = ", ".join(f"{n}={getattr(space, n)}" for n in ("tp", "pp", "dp")
                         if getattr(space, n) is not None)
        raise ValueError(
            f"no TP×PP×DP factorisation of {world} GPUs fits {model.name}: tp must divide "
            f"heads ({model.heads}) and kv_heads ({model.kv_heads}), pp stages must hold the "
            f"layers ({model.layers}), dp must divide global_batch ({training.global_batch})"
            + (f", with {pins}" if pins else ""))
    return out


def meshes(model: ModelConfig, training: TrainingSpec, world: int,
           space: SearchSpace) -> list[Mesh]:
    """Every mesh the search prices: (tp, pp, dp) factorisations of world / cp for each
    cp, with each (ep, etp) of a MoE model (module docstring)."""
    out, failure = [], None
    for cp in cp_options(model, world, space):
        try:
            triples = factorisations(model, training, world // cp, space)
        except ValueError as exc:  # the pins do not fit world / cp
            failure = failure or exc
            continue
        for tp, pp, dp in triples:
            out += [mesh_of(dp, pp, tp, cp, ep, etp)
                    for ep, etp in expert_options(model, tp, cp, dp, space)]
    if not out and failure is not None:
        raise failure
    return out
