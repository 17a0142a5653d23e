"""Context parallelism: ring attention over the CP ranks, forward and backward.

**Load-balanced sequence split** (Megatron-core and Transformer Engine CP). The
sequence of s positions is cut into 2·cp chunks of L = s / (2·cp); CP rank c holds
chunks c and 2·cp-1-c (:func:`cp_positions`), so under the causal mask every rank has
the same attention work: an early chunk, which attends to little, paired with a late
one, which attends to much.

**Forward** (Liu et al. 2023, "Ring Attention"; the online softmax of Milakov &
Gimelshein 2018 and FlashAttention). Each rank keeps its queries and passes its K/V
block around the ring, as the step table :func:`ringpipe.kernels.exchange.ring_pass`
(N-1 steps) says: before step s rank c holds the block of CP rank (c - s) mod N. For
each block it computes scaled scores S = q kᵀ / √d under the causal mask of the global
positions and merges them into running row statistics, the max m, the sum l and the
unnormalised output o:

    m' = max(m, rowmax S);  P = e^{S - m'};  l' = l·e^{m - m'} + rowsum P;
    o' = o·e^{m - m'} + P v

starting from its own block (which leaves no query row without a key, so m is finite
after step 0). At the end ctx = o / l and the log-sum-exp λ = m + log l is kept.

**Backward** (FlashAttention-2's, block by block). With D = rowsum(dctx ⊙ ctx), for
each block: P = e^{S - λ}, dV_b += Pᵀ dctx, dP = dctx v_bᵀ, dS = P ⊙ (dP - D),
dq += dS k_b / √d, dK_b += dSᵀ q / √d. The K/V block travels with its gradient
accumulators dK_b, dV_b (the ring pass with N steps): after N-1 steps every rank has
added its share, and the N-th step brings each block's dK/dV home to its owner, which
therefore receives the full gradient of its own keys and values. Each block's
accumulation order is fixed by the table (ranks b, b+1, ..., b+N-1), so every runtime
gets the same bits.

Grouped-query attention: key/value heads are repeated for their query heads, and dK/dV
of the query heads of one group are summed, as :mod:`ringpipe.model.functional` does.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ringpipe.arrays import array_module
from ringpipe.kernels.exchange import ring_pass, ring_pass_block
from ringpipe.model import functional as F
from ringpipe.model.blocks.comm import LayerComm

__all__ = ["RingCache", "check_cp", "cp_positions", "ring_attention_backward",
           "ring_attention_forward"]


def check_cp(seq: int, cp: int) -> None:
    """ValueError unless a sequence of ``seq`` positions splits into 2·cp equal chunks."""
    if seq % (2 * cp):
        raise ValueError(f"seq={seq} is not divisible by 2 × cp = {2 * cp} (context "
                         "parallelism cuts the sequence into 2·cp equal chunks)")


def cp_positions(seq: int, cp: int, rank: int) -> np.ndarray:
    """The sequence positions CP rank ``rank`` holds, in its local order: chunks
    ``rank`` and ``2·cp-1-rank`` of 2·cp (module docstring); all of them for cp = 1."""
    if cp == 1:
        return np.arange(seq)
    check_cp(seq, cp)
    size = seq // (2 * cp)
    late = 2 * cp - 1 - rank
    return np.concatenate([np.arange(rank * size, (rank + 1) * size),
                           np.arange(late * size, (late + 1) * size)])


class RingCache(NamedTuple):
    """What the backward needs from one rank's ring-attention forward."""

    q: np.ndarray      # (b, heads, n, d)
    k: np.ndarray      # (b, kv_heads, n, d): this rank's own keys
    v: np.ndarray
    ctx: np.ndarray    # (b, heads, n, d), normalised output
    lse: np.ndarray    # (b, heads, n, 1), log-sum-exp of the scaled scores
    rank: int          # this rank's CP coordinate


def _block_scores(q: np.ndarray, k: np.ndarray, group: int, qpos: np.ndarray,
                  kpos: np.ndarray) -> np.ndarray:
    """Scaled, causally masked scores of queries ``q`` against one K block."""
    xp = array_module(q)
    kr = F.repeat_kv(k, group)
    s = (q @ kr.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(q.shape[-1]))
    mask = xp.asarray(qpos[:, None] >= kpos[None, :])
    return xp.where(mask, s, -math.inf)


def _split(qkv: np.ndarray, batch: int, n: int, heads: int,
           kv: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q, k, v = F.split_qkv(qkv, batch, n, heads, kv)
    xp = array_module(qkv)
    return xp.ascontiguousarray(q), xp.ascontiguousarray(k), xp.ascontiguousarray(v)


def ring_attention_forward(comm: LayerComm, qkvs: list[np.ndarray], batch: int, seq: int,
                           heads: int, kv_heads: int) -> tuple[list[np.ndarray], list]:
    """Causal attention of every entry's local positions against the whole sequence.

    ``qkvs[i]`` is entry i's ``(batch·n, (heads + 2·kv_heads)·d)`` activation for its n =
    seq / cp positions (:func:`cp_positions` of ``comm.cp_ranks[i]``); ``seq`` is the
    full length. Returns ctx per entry ``(batch·n, heads·d)`` and the caches."""
    cp = comm.cp
    n = seq // cp
    group = heads // kv_heads
    xp = array_module(qkvs[0])
    parts = [_split(x, batch, n, heads, kv_heads) for x in qkvs]
    pos = [cp_positions(seq, cp, c) for c in comm.cp_ranks]
    table = ring_pass(cp, cp - 1)
    blocks = [xp.stack([k, v]) for _, k, v in parts]
    stats = []
    for q, _, _ in parts:
        neg = xp.full(q.shape[:3] + (1,), -math.inf, dtype=q.dtype)
        stats.append([neg, xp.zeros_like(neg), xp.zeros_like(q)])
    for step in range(cp):
        for i, (q, _, _) in enumerate(parts):
            owner = ring_pass_block(comm.cp_ranks[i], step, cp)
            s = _block_scores(q, blocks[i][0], group, pos[i], cp_positions(seq, cp, owner))
            m, total, o = stats[i]
            m_new = xp.maximum(m, xp.max(s, axis=-1, keepdims=True))
            p = xp.exp(s - m_new)
            scale = xp.exp(m - m_new)
            stats[i] = [m_new, total * scale + xp.sum(p, axis=-1, keepdims=True),
                        o * scale + p @ F.repeat_kv(blocks[i][1], group)]
        if step < cp - 1:
            blocks = comm.cp_exchange(table, step, blocks)
    outs, caches = [], []
    for i, (q, k, v) in enumerate(parts):
        m, total, o = stats[i]
        ctx = o / total
        caches.append(RingCache(q, k, v, ctx, m + xp.log(total), comm.cp_ranks[i]))
        d = q.shape[-1]
        outs.append(ctx.transpose(0, 2, 1, 3).reshape(batch * n, heads * d))
    return outs, caches


def ring_attention_backward(comm: LayerComm, dctxs: list[np.ndarray], caches: list[RingCache],
                            seq: int) -> list[np.ndarray]:
    """dL/dqkv per entry (the layout of the forward's qkv) from dL/dctx (module docs)."""
    cp = comm.cp
    xp = array_module(dctxs[0])
    first = caches[0]
    batch, heads, n, d = first.q.shape
    kv = first.k.shape[1]
    group = heads // kv
    scale = 1.0 / math.sqrt(d)
    table = ring_pass(cp, cp)
    dcs = [dc.reshape(batch, n, heads, d).transpose(0, 2, 1, 3) for dc in dctxs]
    deltas = [xp.sum(dc * c.ctx, axis=-1, keepdims=True) for dc, c in zip(dcs, caches,
                                                                          strict=True)]
    dqs = [xp.zeros_like(c.q) for c in caches]
    travel = [xp.stack([c.k, c.v, xp.zeros_like(c.k), xp.zeros_like(c.v)]) for c in caches]
    pos = [cp_positions(seq, cp, c.rank) for c in caches]
    for step in range(cp):
        for i, c in enumerate(caches):
            owner = ring_pass_block(c.rank, step, cp)
            kb, vb = travel[i][0], travel[i][1]
            s = _block_scores(c.q, kb, group, pos[i], cp_positions(seq, cp, owner))
            p = xp.exp(s - c.lse)
            dv = p.transpose(0, 1, 3, 2) @ dcs[i]
            dp = dcs[i] @ F.repeat_kv(vb, group).transpose(0, 1, 3, 2)
            ds = p * (dp - deltas[i]) * scale
            dqs[i] = dqs[i] + ds @ F.repeat_kv(kb, group)
            dk = ds.transpose(0, 1, 3, 2) @ c.q
            if group > 1:
                dk = xp.sum(dk.reshape(batch, kv, group, n, d), axis=2)
                dv = xp.sum(dv.reshape(batch, kv, group, n, d), axis=2)
            travel[i][2] += dk
            travel[i][3] += dv
        if step < cp - 1:
            travel = comm.cp_exchange(table, step, travel)
        elif cp > 1:  # the last hop: only the gradients go home
            travel = comm.cp_exchange(table, step, [xp.ascontiguousarray(t[2:])
                                                    for t in travel])
        else:
            travel = [t[2:] for t in travel]
    out = []
    for dq, grads in zip(dqs, travel, strict=True):
        dqkv = xp.empty((batch, n, kv, group + 2, d), dtype=dq.dtype)
        dqkv[:, :, :, :group, :] = dq.transpose(0, 2, 1, 3).reshape(batch, n, kv, group, d)
        dqkv[:, :, :, group, :] = grads[0].transpose(0, 2, 1, 3)
        dqkv[:, :, :, group + 1, :] = grads[1].transpose(0, 2, 1, 3)
        out.append(dqkv.reshape(batch * n, (heads + 2 * kv) * d))
    return out
