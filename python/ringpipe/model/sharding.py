"""How parameters split over tensor-parallel ranks (Megatron-LM, Shoeybi et al. 2019).

One rule decides everything: :func:`split_axis` names the axis a parameter is cut along
(into tp equal contiguous blocks; rank t takes block t), or ``None`` if every rank holds
a full copy.

==========================  ==========  ===========================================
parameter                   split axis  why
==========================  ==========  ===========================================
attn.qkv.weight / .bias     1 / 0       column-parallel; head-major columns, so each
                                        rank gets whole heads (see params.py)
attn.out.weight             0           row-parallel (rows = the rank's heads' ctx)
mlp.fc1.weight / .bias      1 / 0       column-parallel
mlp.fc2.weight              0           row-parallel
mlp.gate.weight / .bias     1 / 0       column-parallel (SwiGLU's gate)
moe.shared.gate/up.weight   1           column-parallel (the shared experts)
moe.shared.down.weight      0           row-parallel
moe.experts.gate/up.weight  2           column-parallel per expert (E, h, f_e)
moe.experts.down.weight     1           row-parallel per expert (E, f_e, h)
moe.router.weight           None        replicated: every TP rank routes alike
attn.out.bias, fc2.bias     None        added once, after the all-reduce
norms, embed, in_proj, head None        replicated: not tensor-parallel in ringpipe,
                                        so a block costs exactly 2 all-reduces each
                                        way; their gradients come out identical on
                                        every rank
==========================  ==========  ===========================================

**Expert parallelism** (:mod:`ringpipe.mesh`, ``ep``): the stacked expert weights
``moe.experts.*`` are also cut along axis 0 (:func:`expert_axis`) into ep blocks of
E / ep experts, expert-parallel rank e taking block e (Megatron-core's
``num_local_experts``); everything else is the same on every EP rank.
"""

from __future__ import annotations

import numpy as np

from ringpipe.model.config import ModelConfig
from ringpipe.model.params import check_params, param_shapes

_SPLIT = {
    "attn.qkv.weight": 1,
    "attn.qkv.bias": 0,
    "attn.out.weight": 0,
    "mlp.fc1.weight": 1,
    "mlp.fc1.bias": 0,
    "mlp.fc2.weight": 0,
    "mlp.gate.weight": 1,
    "mlp.gate.bias": 0,
    "moe.shared.gate.weight": 1,
    "moe.shared.up.weight": 1,
    "moe.shared.down.weight": 0,
    "moe.experts.gate.weight": 2,
    "moe.experts.up.weight": 2,
    "moe.experts.down.weight": 1,
}


def split_axis(name: str) -> int | None:
    """The axis parameter ``name`` is split along across tp ranks, or None (replicated)."""
    if name.startswith("layers."):
        return _SPLIT.get(name.split(".", 2)[2])
    return None


def expert_axis(name: str) -> int | None:
    """0 for the stacked expert weights (cut over expert-parallel ranks), else None."""
    return 0 if ".moe.experts." in name else None


def shard_shape(shape: tuple[int, ...], name: str, tp: int, ep: int = 1) -> tuple[int, ...]:
    """The shape of one rank's shard of parameter ``name`` of full shape ``shape``."""
    out = list(shape)
    axis = split_axis(name)
    if axis is not None:
        out[axis] //= tp
    if expert_axis(name) is not None:
        out[0] //= ep
    return tuple(out)


def shard_param_shapes(config: ModelConfig, tp: int) -> dict[str, tuple[int, ...]]:
    """Every parameter's per-rank shape for tensor-parallel degree ``tp``."""
    config.check_tp(tp)
    return {n: shard_shape(s, n, tp) for n, s in param_shapes(config).items()}


def shard_param(name: str, value: np.ndarray, tp: int, t: int, ep: int = 1,
                e: int = 0) -> np.ndarray:
    """TP rank t's (and, for expert weights, EP rank e's) shard of parameter ``name``:
    block t of tp equal contiguous blocks along :func:`split_axis` (block e of ep along
    :func:`expert_axis`), or the whole array if replicated; always a fresh C-contiguous
    copy, so ranks never alias each other or the caller's array. The one place the TP
    and EP splits are computed (the runtimes and the inference shards call it)."""
    if expert_axis(name) is not None:
        value = np.split(value, ep, axis=0)[e]
    axis = split_axis(name)
    piece = value if axis is None else np.split(value, tp, axis=axis)[t]
    return np.ascontiguousarray(piece).copy()


def shard_params(config: ModelConfig, params: dict[str, np.ndarray],
                 tp: int) -> list[dict[str, np.ndarray]]:
    """Rank t's shard of every parameter, for t in range(tp).

    Split parameters are cut into tp contiguous blocks along :func:`split_axis`; every
    returned array is a fresh C-contiguous copy (replicated ones included), so ranks
    never alias each other or the caller's ``params``.
    """
    config.check_tp(tp)
    check_params(config, params)
    return [{name: shard_param(name, value, tp, t) for name, value in params.items()}
            for t in range(tp)]


def gather_grads(config: ModelConfig, shard_grads: list[dict[str, np.ndarray]], tp: int,
                 *, check_replicated: bool = False) -> dict[str, np.ndarray]:
    """Reassemble full-shape gradients from every rank's shard gradients.

    ``shard_grads[t]`` holds rank t's gradients (any subset of the parameters, e.g. one
    pipeline stage's, the same names on every rank); the result is in the forward order
    of :func:`~ringpipe.model.params.param_shapes`. Split parameters are concatenated
    along :func:`split_axis`; replicated ones are taken from rank 0. After the correct
    all-reduces every rank computes bitwise the same gradient for a replicated
    parameter; with ``check_replicated`` a difference raises ValueError.
    """
    config.check_tp(tp)
    if not isinstance(shard_grads, list) or len(shard_grads) != tp:
        raise ValueError(f"shard_grads must be a list of {tp} dicts (one per tp rank)")
    if not isinstance(shard_grads[0], dict):
        raise TypeError("shard_grads[0] must be a dict of arrays")
    full = param_shapes(config)
    unknown = sorted(set(shard_grads[0]) - set(full))
    if unknown:
        raise ValueError(f"shard_grads[0] has unknown parameters {unknown[:4]}")
    names = [name for name in full if name in shard_grads[0]]  # forward order
    for t, grads in enumerate(shard_grads):
        if not isinstance(grads, dict) or set(grads) != set(names):
            raise ValueError(f"shard_grads[{t}] must hold the same names as shard_grads[0]")
        for name in names:
            want = shard_shape(full[name], name, tp)
            if grads[name].shape != want:
                raise ValueError(f"shard_grads[{t}][{name!r}] has shape {grads[name].shape}, "
                                 f"expected {want}")
    out: dict[str, np.ndarray] = {}
    for name in names:
        axis = split_axis(name)
        if axis is not None:
            out[name] = np.concatenate([g[name] for g in shard_grads], axis=axis)
            continue
        out[name] = shard_grads[0][name]
        if check_replicated:
            for t in range(1, tp):
                if not np.array_equal(shard_grads[t][name], out[name]):
                    raise ValueError(f"replicated gradient {name!r} differs between tp rank "
                                     f"0 and tp rank {t}")
    return out


def join_expert_shards(per_ep: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One TP rank's gradients from its ep expert-parallel ranks' (``per_ep[e]``: EP rank
    e's): expert weights concatenated along :func:`expert_axis` in EP order, everything
    else taken from EP rank 0 (the same on every EP rank after the reductions)."""
    out = dict(per_ep[0])
    for name in out:
        if expert_axis(name) is not None:
            out[name] = np.concatenate([g[name] for g in per_ep], axis=0)
    return out
