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
exactly 2 (the two f's); the MLP-only block makes 1 and 1. Norms, the embedding /
input projection and the head are computed redundantly on every rank (replicated).

Backward is split for zero-bubble schedules (Qi et al., ICLR 2024): the ``*_input``
functions propagate activation gradients (the I pass, with all communication) and
record :class:`WeightJob` s; :func:`run_weight_jobs` later turns those into parameter
gradients (the W pass, no communication).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ringpipe.model import functional as F
from ringpipe.model import layers as L
from ringpipe.model.config import ModelConfig

Shards = list[dict[str, np.ndarray]]


class WeightJob(NamedTuple):
    """A deferred weight-gradient computation for parameter group ``prefix``.

    kind "linear": saved = (x, dy) -> weight = x^T dy, bias = sum_rows(dy);
    kind "norm":   saved = (NormCache, dy) -> weight (and layernorm bias) gradients;
    kind "embed":  saved = (token ids (n,), dy) -> embedding rows scatter-added."""

    kind: str
    prefix: str
    saved: tuple


def run_weight_jobs(config: ModelConfig, jobs: list[WeightJob]) -> dict[str, np.ndarray]:
    """The W pass on one rank: every job's parameter gradients, by parameter name."""
    grads: dict[str, np.ndarray] = {}
    for job in jobs:
        p, (a, dy) = job.prefix, job.saved
        if job.kind == "linear":
            grads[f"{p}.weight"], grads[f"{p}.bias"] = L.linear_backward_weight(a, dy)
        elif job.kind == "norm":
            dw, db = F.norm_backward_weight(dy, a, config.norm)
            grads[f"{p}.weight"] = dw
            if db is not None:
                grads[f"{p}.bias"] = db
        else:  # "embed"
            grads[f"{p}.weight"] = F.embedding_backward(a, dy, config.vocab)
    return grads


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


def block_forward(config: ModelConfig, layer: int, shards: Shards, xs: list[np.ndarray],
                  all_reduce: L.AllReduce, batch: int,
                  tp: int) -> tuple[list[np.ndarray], list[dict]]:
    """One block on all ranks; returns the outputs and per-rank caches for backward."""
    p, caches = f"layers.{layer}", [{} for _ in shards]
    if config.has_attention:
        h1 = []
        for t, (s, x) in enumerate(zip(shards, xs, strict=True)):
            h, caches[t]["n1"] = _norm(s, f"{p}.norm1", x, config)
            h1.append(h)
        qkv = L.column_parallel_forward(h1, _weights(shards, f"{p}.attn.qkv.weight"),
                                        _weights(shards, f"{p}.attn.qkv.bias"))
        ctx = []
        for t, q in enumerate(qkv):
            c, caches[t]["attn"] = F.attention_forward(q, batch, config.seq, config.heads // tp,
                                                       config.kv_heads // tp)
            caches[t]["h1"], caches[t]["ctx"] = h1[t], c
            ctx.append(c)
        out = L.row_parallel_forward(ctx, _weights(shards, f"{p}.attn.out.weight"),
                                     _weights(shards, f"{p}.attn.out.bias"), all_reduce)
        xs = [x + o for x, o in zip(xs, out, strict=True)]
    h2 = []
    for t, (s, x) in enumerate(zip(shards, xs, strict=True)):
        h, caches[t]["n2"] = _norm(s, f"{p}.norm2", x, config)
        h2.append(h)
    pre = L.column_parallel_forward(h2, _weights(shards, f"{p}.mlp.fc1.weight"),
                                    _weights(shards, f"{p}.mlp.fc1.bias"))
    act = []
    for t, z in enumerate(pre):
        a, caches[t]["tanh"] = F.gelu_forward(z)
        caches[t]["h2"], caches[t]["pre"], caches[t]["act"] = h2[t], z, a
        act.append(a)
    out = L.row_parallel_forward(act, _weights(shards, f"{p}.mlp.fc2.weight"),
                                 _weights(shards, f"{p}.mlp.fc2.bias"), all_reduce)
    return [x + o for x, o in zip(xs, out, strict=True)], caches


def block_backward_input(config: ModelConfig, layer: int, shards: Shards, caches: list[dict],
                         dys: list[np.ndarray], all_reduce: L.AllReduce,
                         jobs: list[list[WeightJob]]) -> list[np.ndarray]:
    """The I pass through one block: dL/dx on every rank; appends weight jobs."""
    p = f"layers.{layer}"
    # MLP branch: row-parallel fc2 (g: identity backward), column-parallel fc1 (f).
    dact = L.row_parallel_backward_input(dys, _weights(shards, f"{p}.mlp.fc2.weight"))
    dpre = []
    for t, c in enumerate(caches):
        jobs[t].append(WeightJob("linear", f"{p}.mlp.fc2", (c["act"], dys[t])))
        dpre.append(F.gelu_backward(dact[t], c["pre"], c["tanh"]))
        jobs[t].append(WeightJob("linear", f"{p}.mlp.fc1", (c["h2"], dpre[t])))
    dh2 = L.column_parallel_backward_input(dpre, _weights(shards, f"{p}.mlp.fc1.weight"),
                                           all_reduce)
    dxs = _norm_input(config, shards, f"{p}.norm2", caches, "n2", dh2, jobs, dys)
    if not config.has_attention:
        return dxs
    # Attention branch: row-parallel out-proj, local heads, column-parallel qkv (f).
    dctx = L.row_parallel_backward_input(dxs, _weights(shards, f"{p}.attn.out.weight"))
    dqkv = []
    for t, c in enumerate(caches):
        jobs[t].append(WeightJob("linear", f"{p}.attn.out", (c["ctx"], dxs[t])))
        dqkv.append(F.attention_backward(dctx[t], c["attn"],
                                         c["attn"].k.shape[1] // config.group_size))
        jobs[t].append(WeightJob("linear", f"{p}.attn.qkv", (c["h1"], dqkv[t])))
    dh1 = L.column_parallel_backward_input(dqkv, _weights(shards, f"{p}.attn.qkv.weight"),
                                           all_reduce)
    return _norm_input(config, shards, f"{p}.norm1", caches, "n1", dh1, jobs, dxs)


def head_forward(config: ModelConfig, shards: Shards, xs: list[np.ndarray],
                 targets: np.ndarray,
                 loss_scale: float) -> tuple[list, list[np.ndarray], list[dict]]:
    """final_norm, head and loss on every rank (replicated). Returns per-rank unscaled
    losses (scalars where the activations live: reading one is a device-to-host sync),
    head outputs (n, vocab or hidden) and caches (holding dL/doutput, which the loss
    gives at once: the scaled softmax - onehot, or 2 (y - t) / N)."""
    losses, outs, caches = [], [], []
    for s, x in zip(shards, xs, strict=True):
        h, nc = _norm(s, "final_norm", x, config)
        out = h @ s["head.weight"] + s["head.bias"]
        if config.vocab:
            loss, dout = F.cross_entropy(out, targets)
        else:
            loss, dout = F.mean_squared_error(out, targets)
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
