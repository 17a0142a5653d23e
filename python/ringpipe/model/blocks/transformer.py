"""Tensor-parallel pieces of a pipeline stage: input layer, blocks, output head.

Every function works on all T ranks of one TP group at once: ``shards[t]`` is rank
t's parameter dict (see :mod:`ringpipe.model.sharding`) and activations are lists
``xs[t]`` of 2-D ``(n, hidden)`` arrays, n = batch*seq, identical on every rank.
Nothing here assumes the lists hold all T ranks: in local-rank mode (one process per
TP rank, see :mod:`ringpipe.model.stage`) they hold one, the ``tp`` argument of
:func:`block_forward` is still the group size T (heads per rank = heads / T), and the
``all_reduce`` callable sums across processes.

Per transformer block (Megatron-LM, Shoeybi et al. 2019, arXiv:1909.08053, fig. 3)::

    x = x + g(attention_t(f(norm1(x)) @ Wqkv_t + bqkv_t) @ Wout_t) + bout
    x = x + g(gelu(f(norm2(x)) @ Wfc1_t + bfc1_t) @ Wfc2_t) + bfc2

so forward makes exactly 2 all-reduces (the two g's) and the input-gradient pass
exactly 2 (the two f's); the MLP-only block makes 1 and 1. SwiGLU (``gated_mlp``) adds a
column-parallel gate beside fc1 (:mod:`ringpipe.model.blocks.mlp`); a MoE layer replaces
the MLP by the expert-parallel block of :mod:`ringpipe.model.moe.block` (forward: the
expert outputs' and, with shared experts, their g all-reduce; backward: one f).

**Context parallelism** (a :class:`~ringpipe.model.blocks.comm.LayerComm` with cp > 1): each
rank holds seq / cp positions (``config.seq`` is that local length here) and the
attention runs as ring attention over the CP group
(:mod:`ringpipe.model.blocks.ring_attention`); everything else is per token and unchanged.
Norms, the embedding / input projection and the head are computed redundantly on every
rank (replicated).

Backward is split for zero-bubble schedules (Qi et al., ICLR 2024): the ``*_input``
functions propagate activation gradients (the I pass, with all communication) and
record :class:`WeightJob` s; :func:`run_weight_jobs` later turns those into parameter
gradients (the W pass, no communication).
"""

from __future__ import annotations

import numpy as np

from ringpipe.model import functional as F
from ringpipe.model import layers as L
from ringpipe.model.blocks.comm import LayerComm, as_layer_comm
from ringpipe.model.blocks.mlp import mlp_backward_input, mlp_forward
from ringpipe.model.blocks.ring_attention import ring_attention_backward, ring_attention_forward
from ringpipe.model.blocks.weight_jobs import WeightJob, run_weight_jobs
from ringpipe.model.config import ModelConfig
from ringpipe.model.moe.block import moe_block_backward, moe_block_forward

__all__ = ["Shards", "WeightJob", "block_backward_input", "block_forward", "head_backward_input",
           "head_forward", "input_backward", "input_forward", "run_weight_jobs"]

Shards = list[dict[str, np.ndarray]]


def _norm(shard: dict[str, np.ndarray], prefix: str, x: np.ndarray,
          config: ModelConfig) -> tuple[np.ndarray, F.NormCache]:
    return F.norm_forward(x, shard[f"{prefix}.weight"], shard.get(f"{prefix}.bias"),
                          config.norm, config.eps)


def _norm_input(config: ModelConfig, shards: Shards, prefix: str, caches: list[dict],
                key: str, dys: list[np.ndarray], jobs: list[list[WeightJob]],
                residual: list[np.ndarray] | None) -> list[np.ndarray]:
    """(residual +) dL/dx through a replicated norm; records the norm's weight job."""
    out = []
    for t, (shard, dy) in enumerate(zip(shards, dys, strict=True)):
        jobs[t].append(WeightJob("norm", prefix, (caches[t][key], dy)))
        dx = F.norm_backward_input(dy, shard[f"{prefix}.weight"], caches[t][key], config.norm)
        out.append(dx if residual is None else residual[t] + dx)
    return out


def _weights(shards: Shards, name: str) -> list[np.ndarray]:
    return [s[name] for s in shards]


def input_forward(config: ModelConfig, shards: Shards,
                  inputs: list[np.ndarray]) -> list[np.ndarray]:
    """x = embed[tokens] (vocab > 0) or x = batch @ W_in + b_in, on every rank.
    ``inputs[t]`` is the flattened micro-batch: ids (n,) or dense (n, hidden)."""
    if config.vocab:
        return [s["embed.weight"][ids] for s, ids in zip(shards, inputs, strict=True)]
    return [x @ s["in_proj.weight"] + s["in_proj.bias"]
            for s, x in zip(shards, inputs, strict=True)]


def input_backward(config: ModelConfig, inputs: list[np.ndarray], dxs: list[np.ndarray],
                   jobs: list[list[WeightJob]]) -> None:
    """Record the input layer's weight jobs (no input gradient: the batch is data)."""
    for t, (inp, dx) in enumerate(zip(inputs, dxs, strict=True)):
        if config.vocab:
            jobs[t].append(WeightJob("embed", "embed", (inp, dx)))
        else:
            jobs[t].append(WeightJob("linear", "in_proj", (inp, dx)))


def _attention_forward(config: ModelConfig, p: str, shards: Shards, xs: list[np.ndarray],
                       comm: LayerComm, batch: int, tp: int,
                       caches: list[dict]) -> list[np.ndarray]:
    """x + attention(norm1(x)): QKV column-parallel, the heads local (ring attention over
    the CP group when cp > 1), the output projection row-parallel (one g)."""
    h1 = []
    for t, (s, x) in enumerate(zip(shards, xs, strict=True)):
        h, caches[t]["n1"] = _norm(s, f"{p}.norm1", x, config)
        h1.append(h)
    qkv = L.column_parallel_forward(h1, _weights(shards, f"{p}.attn.qkv.weight"),
                                    _weights(shards, f"{p}.attn.qkv.bias"))
    heads, kv = config.heads // tp, config.kv_heads // tp  # type: ignore[operator]
    if comm.cp > 1:
        ctx, ring = ring_attention_forward(comm, qkv, batch, config.seq * comm.cp, heads, kv)
        for t, c in enumerate(ring):
            caches[t]["ring"] = c
    else:
        ctx = []
        for t, q in enumerate(qkv):
            c, caches[t]["attn"] = F.attention_forward(q, batch, config.seq, heads, kv)
            ctx.append(c)
    for t in range(len(xs)):
        caches[t]["h1"], caches[t]["ctx"] = h1[t], ctx[t]
    out = L.row_parallel_forward(ctx, _weights(shards, f"{p}.attn.out.weight"),
                                 _weights(shards, f"{p}.attn.out.bias"), comm.tp_all_reduce)
    return [x + o for x, o in zip(xs, out, strict=True)]


def block_forward(config: ModelConfig, layer: int, shards: Shards, xs: list[np.ndarray],
                  all_reduce: L.AllReduce | LayerComm, batch: int, tp: int,
                  aux_weight: float = 0.0) -> tuple[list[np.ndarray], list[dict]]:
    """One block on all ranks; returns the outputs and per-rank caches for backward.

    ``all_reduce`` is the TP reduction or a :class:`~ringpipe.model.blocks.comm.LayerComm`
    (context and expert parallelism); ``config.seq`` is the length each rank holds
    (seq / cp); ``aux_weight`` the weight of each sequence in the objective (1 / global
    batch), which scales a MoE layer's auxiliary loss."""
    comm = as_layer_comm(all_reduce, len(xs))
    p, caches = f"layers.{layer}", [{} for _ in shards]
    if config.has_attention:
        xs = _attention_forward(config, p, shards, xs, comm, batch, tp, caches)
    h2 = []
    for t, (s, x) in enumerate(zip(shards, xs, strict=True)):
        h, caches[t]["n2"] = _norm(s, f"{p}.norm2", x, config)
        h2.append(h)
    if config.is_moe_layer(layer):
        out, moe = moe_block_forward(config, f"{p}.moe", shards, h2, comm, batch, aux_weight)
        for t, c in enumerate(moe):
            caches[t]["moe"] = c
    else:
        out = mlp_forward(config, p, shards, h2, comm.tp_all_reduce, caches)
    return [x + o for x, o in zip(xs, out, strict=True)], caches


def block_backward_input(config: ModelConfig, layer: int, shards: Shards, caches: list[dict],
                         dys: list[np.ndarray], all_reduce: L.AllReduce | LayerComm,
                         jobs: list[list[WeightJob]]) -> list[np.ndarray]:
    """The I pass through one block: dL/dx on every rank; appends weight jobs."""
    comm = as_layer_comm(all_reduce, len(dys))
    p = f"layers.{layer}"
    if config.is_moe_layer(layer):
        dh2, moe_jobs = moe_block_backward(config, f"{p}.moe", shards,
                                           [c["moe"] for c in caches], dys, comm)
        for t, more in enumerate(moe_jobs):
            jobs[t].extend(WeightJob(*job) for job in more)
    else:
        dh2 = mlp_backward_input(config, p, shards, caches, dys, comm.tp_all_reduce, jobs)
    dxs = _norm_input(config, shards, f"{p}.norm2", caches, "n2", dh2, jobs, dys)
    if not config.has_attention:
        return dxs
    # Attention branch: row-parallel out-proj, local heads, column-parallel qkv (f).
    dctx = L.row_parallel_backward_input(dxs, _weights(shards, f"{p}.attn.out.weight"))
    for t, c in enumerate(caches):
        jobs[t].append(WeightJob("linear", f"{p}.attn.out", (c["ctx"], dxs[t])))
    if comm.cp > 1:
        dqkv = ring_attention_backward(comm, dctx, [c["ring"] for c in caches],
                                       config.seq * comm.cp)
    else:
        dqkv = [F.attention_backward(dctx[t], c["attn"], c["attn"].k.shape[1] // config.group_size)
                for t, c in enumerate(caches)]
    for t, c in enumerate(caches):
        jobs[t].append(WeightJob("linear", f"{p}.attn.qkv", (c["h1"], dqkv[t])))
    dh1 = L.column_parallel_backward_input(dqkv, _weights(shards, f"{p}.attn.qkv.weight"),
                                           comm.tp_all_reduce)
    return _norm_input(config, shards, f"{p}.norm1", caches, "n1", dh1, jobs, dxs)


def head_forward(config: ModelConfig, shards: Shards, xs: list[np.ndarray],
                 targets: np.ndarray | list[np.ndarray],
                 loss_scale: float) -> tuple[list, list[np.ndarray], list[dict]]:
    """final_norm, head and loss on every rank (replicated). ``targets``: one array for
    every rank, or a list with one per rank. Returns per-rank unscaled losses (scalars
    where the activations live: reading one is a device-to-host sync), head outputs
    (n, vocab or hidden) and caches (holding dL/doutput, which the loss gives at once:
    the scaled softmax - onehot, or 2 (y - t) / N)."""
    losses, outs, caches = [], [], []
    per_rank = targets if isinstance(targets, list) else [targets] * len(xs)
    for s, x, tgt in zip(shards, xs, per_rank, strict=True):
        h, nc = _norm(s, "final_norm", x, config)
        out = h @ s["head.weight"] + s["head.bias"]
        if config.vocab:
            loss, dout = F.cross_entropy(out, tgt)
        else:
            loss, dout = F.mean_squared_error(out, tgt)
        losses.append(loss)
        outs.append(out)
        caches.append({"h": h, "n": nc, "dout": dout * loss_scale})
    return losses, outs, caches


def head_backward_input(config: ModelConfig, shards: Shards, caches: list[dict],
                        jobs: list[list[WeightJob]]) -> list[np.ndarray]:
    """The I pass from the loss to the final norm's input, on every rank."""
    dh = []
    for t, (s, c) in enumerate(zip(shards, caches, strict=True)):
        jobs[t].append(WeightJob("linear", "head", (c["h"], c["dout"])))
        dh.append(c["dout"] @ s["head.weight"].T)
    return _norm_input(config, shards, "final_norm", caches, "n", dh, jobs, None)
