"""The expert-parallel MoE block over a stage's ranks: dispatch, experts, combine.

Every rank of an EP group (:mod:`ringpipe.mesh`: ``ep``) routes its own tokens
(:func:`ringpipe.model.moe.maths.route`) and holds E / ep experts (EP rank e: experts
``e·E/ep .. (e+1)·E/ep - 1``, :mod:`ringpipe.model.sharding`). Per MoE block:

1. **counts**: each rank sorts its n·k assignments by expert (token order within an
   expert) and all-gathers its per-expert counts over the EP group, so every rank knows
   ``C[src, e]``, the rows rank src sends to expert e;
2. **dispatch** (dropless): rank src's rows for EP rank dst (dst's experts, in expert
   order) fill block dst of an ep × pad × h buffer, pad = max over (src, dst) of the
   rows sent, the rest zeros; one all-to-all (:func:`ringpipe.all_to_all`'s pairwise
   table, :meth:`~ringpipe.model.blocks.comm.LayerComm.ep_all_to_all`) delivers them; no token
   is dropped, padding only rounds each message up to the largest;
3. **experts**: EP rank dst runs expert e on its rows from every source, in source
   order; under TP each rank holds f_e / tp of every expert (gate and up by columns,
   down by rows) and the expert outputs are all-reduced over the TP group (Megatron's
   row-parallel reduction, before the combine);
4. **combine**: a second all-to-all returns every row to its source, which adds its
   k expert outputs weighted by the router (:func:`ringpipe.model.moe.maths.combine`);
   shared experts run on every token as a TP-split SwiGLU MLP (one g all-reduce).

Backward runs the same two all-to-alls in reverse with the output gradients (the
experts' input gradients are partial under TP; they are summed with the shared
experts' in one f all-reduce at the token level), then the router's gradient, which
is replicated over TP and added after that all-reduce. The auxiliary loss's per-sequence
counts are summed over the CP ring first (:meth:`LayerComm.cp_all_reduce`).

With ep = tp = cp = 1 the block performs the reference's operations in the reference's
order (:func:`ringpipe.model.moe.maths.moe_reference_forward`), bit for bit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ringpipe.arrays import array_module, to_host
from ringpipe.model import layers as L
from ringpipe.model.blocks.comm import LayerComm
from ringpipe.model.config import ModelConfig
from ringpipe.model.moe import maths as M

__all__ = ["MoeCache", "moe_block_backward", "moe_block_forward"]


class _Plan(NamedTuple):
    """One rank's dispatch layout for one MoE block."""

    order: np.ndarray     # assignments sorted by expert
    counts: np.ndarray    # (ep, E) int: rows rank src sends to expert e
    pad: int              # rows per all-to-all block
    mine: int             # this rank's EP coordinate


class MoeCache(NamedTuple):
    """One rank's MoE forward, kept for the backward."""

    x: np.ndarray
    routing: M.Routing
    plan: _Plan
    experts: list          # ExpertCache per local expert
    y: np.ndarray          # (n, k, h) full expert outputs of this rank's assignments
    shared: M.ExpertCache | None
    daux: np.ndarray | None
    aux: float


def _weights(shard: dict, prefix: str, group: str) -> tuple[np.ndarray, ...]:
    return tuple(shard[f"{prefix}.{group}.{part}.weight"] for part in ("gate", "up", "down"))


def _local(plan: _Plan, experts: int) -> range:
    per = experts // plan.counts.shape[0]
    return range(plan.mine * per, (plan.mine + 1) * per)


def _send(plan: _Plan, rows: np.ndarray, experts: int) -> np.ndarray:
    """Rows in sorted-assignment order, cut into the ep blocks of the all-to-all."""
    xp = array_module(rows)
    ep = plan.counts.shape[0]
    per = experts // ep
    buf = xp.zeros((ep, plan.pad, rows.shape[1]), dtype=rows.dtype)
    sizes = plan.counts[plan.mine].reshape(ep, per).sum(axis=1).tolist()
    start = 0
    for dst, size in enumerate(sizes):
        buf[dst, :size] = rows[start:start + size]
        start += size
    return buf.reshape(-1)


def _unsend(plan: _Plan, flat: np.ndarray, width: int, experts: int) -> np.ndarray:
    """The inverse of :func:`_send` on the returned buffer: rows in sorted order."""
    xp = array_module(flat)
    ep = plan.counts.shape[0]
    per = experts // ep
    buf = flat.reshape(ep, plan.pad, width)
    sizes = plan.counts[plan.mine].reshape(ep, per).sum(axis=1).tolist()
    return xp.concatenate([buf[dst, :size] for dst, size in enumerate(sizes)])


def _slices(plan: _Plan, experts: int) -> list[list[tuple[int, int, int]]]:
    """Per local expert, its (source, first row, end row) in the received buffer."""
    out = []
    local = _local(plan, experts)
    for e in local:
        rows = []
        for src in range(plan.counts.shape[0]):
            first = int(plan.counts[src, local.start:e].sum())
            rows.append((src, first, first + int(plan.counts[src, e])))
        out.append(rows)
    return out


def _gather_rows(plan: _Plan, flat: np.ndarray, width: int, experts: int) -> list:
    """Per local expert, its received rows from every source in source order."""
    xp = array_module(flat)
    buf = flat.reshape(plan.counts.shape[0], plan.pad, width)
    return [xp.concatenate([buf[src, a:b] for src, a, b in rows])
            for rows in _slices(plan, experts)]


def _scatter_rows(plan: _Plan, per_expert: list, width: int, experts: int,
                  like: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_gather_rows`: rows back into an ep × pad × width buffer."""
    xp = array_module(like)
    buf = xp.zeros((plan.counts.shape[0], plan.pad, width), dtype=like.dtype)
    for rows, values in zip(_slices(plan, experts), per_expert, strict=True):
        start = 0
        for src, a, b in rows:
            buf[src, a:b] = values[start:start + b - a]
            start += b - a
    return buf.reshape(-1)


def _plans(config: ModelConfig, comm: LayerComm, routings: list[M.Routing]) -> list[_Plan]:
    """Sort every rank's assignments and agree on the counts over each EP group."""
    sorted_counts = [M.dispatch_order(r.experts, config.experts) for r in routings]
    gathered = comm.ep_all_gather([c.astype(np.int64) for _, c in sorted_counts])
    plans = []
    for i, ((order, _), flat) in enumerate(zip(sorted_counts, gathered, strict=True)):
        counts = to_host(flat).reshape(comm.ep, config.experts)
        sizes = counts.reshape(comm.ep, comm.ep, -1).sum(axis=2)
        plans.append(_Plan(order, counts, int(sizes.max()), comm.ep_ranks[i]))
    return plans


def moe_block_forward(config: ModelConfig, prefix: str, shards: list[dict], xs: list,
                      comm: LayerComm, batch: int, weight: float) -> tuple[list, list]:
    """The MoE block on every rank (module docstring): outputs and :class:`MoeCache` s.
    ``xs[i]`` are rank i's normalised inputs (n × h); ``weight`` is each sequence's weight
    in the objective (the auxiliary loss's scale: 1 / global batch)."""
    e, k = config.experts, config.top_k
    h = xs[0].shape[1]
    routings = [M.route(x, s[f"{prefix}.router.weight"], k, config.moe_norm_topk)
                for x, s in zip(xs, shards, strict=True)]
    plans = _plans(config, comm, routings)
    send = [_send(p, x[p.order // k], e) for p, x in zip(plans, xs, strict=True)]
    received = comm.ep_all_to_all(send)
    expert_out, expert_caches = [], []
    for i, (p, flat) in enumerate(zip(plans, received, strict=True)):
        gate, up, down = _weights(shards[i], prefix, "experts")
        outs = [M.expert_forward(rows, gate[j], up[j], down[j])
                for j, rows in enumerate(_gather_rows(p, flat, h, e))]
        expert_caches.append([c for _, c in outs])
        expert_out.append(array_module(flat).concatenate([y for y, _ in outs]))
    expert_out = L.g_forward(expert_out, comm.tp_all_reduce)  # full expert outputs
    back = []
    for p, y, c in zip(plans, expert_out, expert_caches, strict=True):
        sizes = np.cumsum([0] + [cache.x.shape[0] for cache in c])
        back.append(_scatter_rows(p, [y[a:b] for a, b in zip(sizes[:-1], sizes[1:],
                                                             strict=True)], h, e, y))
    returned = comm.ep_all_to_all(back)
    outs, ys = [], []
    for p, r, flat, x in zip(plans, routings, returned, xs, strict=True):
        xp = array_module(x)
        y = xp.empty((x.shape[0] * k, h), dtype=x.dtype)
        y[p.order] = _unsend(p, flat, h, e)
        ys.append(y.reshape(x.shape[0], k, h))
        outs.append(M.combine(r.weights, ys[-1]))
    shared_caches: list = [None] * len(xs)
    if config.shared_experts:
        partial = []
        for i, x in enumerate(xs):
            y, shared_caches[i] = M.expert_forward(x, *_weights(shards[i], prefix, "shared"))
            partial.append(y)
        shared = L.g_forward(partial, comm.tp_all_reduce)
        outs = [o + s for o, s in zip(outs, shared, strict=True)]
    counts = [M.sequence_counts(r.experts, batch, e) for r in routings]
    comm.cp_all_reduce(counts)
    seq = xs[0].shape[0] // batch * comm.cp
    caches = []
    for i, r in enumerate(routings):
        aux, daux = M.aux_loss(config, r, counts[i], seq, weight)
        caches.append(MoeCache(xs[i], r, plans[i], expert_caches[i], ys[i], shared_caches[i],
                               daux, aux))
    return outs, caches


def moe_block_backward(config: ModelConfig, prefix: str, shards: list[dict], caches: list,
                       dys: list, comm: LayerComm) -> tuple[list, list[list[tuple]]]:
    """dL/dx per rank and, per rank, the weight-gradient jobs as (kind, name, saved):
    ``"matmul"`` (router, shared: x^T dy) and ``"experts"`` (the stacked experts)."""
    e, k = config.experts, config.top_k
    h = dys[0].shape[1]
    dgs, send = [], []
    for c, dy in zip(caches, dys, strict=True):
        dy_assign, dg = M.combine_backward(dy, c.routing.weights, c.y)
        dgs.append(dg)
        send.append(_send(c.plan, dy_assign.reshape(-1, h)[c.plan.order], e))
    received = comm.ep_all_to_all(send)
    back, jobs = [], [[] for _ in caches]
    for i, (c, flat) in enumerate(zip(caches, received, strict=True)):
        gate, up, down = _weights(shards[i], prefix, "experts")
        results = [M.expert_backward(rows, c.experts[j], gate[j], up[j], down[j])
                   for j, rows in enumerate(_gather_rows(c.plan, flat, h, e))]
        jobs[i].append(("experts", f"{prefix}.experts", [s for _, s in results]))
        back.append(_scatter_rows(c.plan, [dx for dx, _ in results], h, e, flat))
    returned = comm.ep_all_to_all(back)
    partial = []
    for i, (c, flat) in enumerate(zip(caches, returned, strict=True)):
        xp = array_module(flat)
        n = c.x.shape[0]
        dx_assign = xp.empty((n * k, h), dtype=flat.dtype)
        dx_assign[c.plan.order] = _unsend(c.plan, flat, h, e)
        dx_assign = dx_assign.reshape(n, k, h)
        dx = dx_assign[:, 0]
        for slot in range(1, k):
            dx = dx + dx_assign[:, slot]
        if c.shared is not None:
            wg, wu, wd = _weights(shards[i], prefix, "shared")
            dxs, saved = M.expert_backward(dys[i], c.shared, wg, wu, wd)
            dx = dx + dxs
            jobs[i].append(("shared", f"{prefix}.shared", saved))
        partial.append(dx)
    reduced = L.f_backward(partial, comm.tp_all_reduce)
    out = []
    for i, (c, dx) in enumerate(zip(caches, reduced, strict=True)):
        dz = M.route_backward(dgs[i], c.routing, c.daux)
        jobs[i].append(("matmul", f"{prefix}.router", (c.x, dz)))
        out.append(dx + dz @ shards[i][f"{prefix}.router.weight"].T)
    return out, jobs
