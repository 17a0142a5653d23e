"""Rank-local model maths: norms, GeLU, causal attention, losses; forward and backward.

Nothing here communicates or knows about sharding. Both the single-device reference
(:mod:`ringpipe.model.reference`) and the tensor-parallel blocks
(:mod:`ringpipe.model.blocks`) call these functions, so a tp=1 run performs the same
floating-point operations in the same order as the reference (bitwise equality), and
the finite-difference checks of the reference verify this maths once for both.

Every function takes its array module from its inputs (:func:`ringpipe.arrays.array_module`):
NumPy arrays are computed on the host, CuPy arrays on their GPU, with the same code.

Activations are 2-D ``(n, width)`` with ``n = batch * seq`` rows (one per token position,
batch-major); the attention functions reshape to ``(batch, heads, seq, d)`` inside.
Backward functions are split like the zero-bubble schedule needs (Qi et al., "Zero
Bubble Pipeline Parallelism", ICLR 2024): ``*_backward_input`` gives the gradient with
respect to the input, ``*_backward_weight`` the parameter gradients.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from ringpipe.arrays import array_module

GELU_C = math.sqrt(2.0 / math.pi)
GELU_A = 0.044715


class NormCache(NamedTuple):
    xhat: np.ndarray  # normalised input, (n, h)
    rstd: np.ndarray  # 1 / sqrt(mean(.)^2 + eps), (n, 1)


def norm_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, kind: str,
                 eps: float) -> tuple[np.ndarray, NormCache]:
    """RMSNorm or LayerNorm over the last axis.

    - rmsnorm (Zhang and Sennrich 2019): y = x / sqrt(mean(x^2) + eps) * w.
    - layernorm (Ba et al. 2016): y = (x - mean(x)) / sqrt(var(x) + eps) * w + b, with
      the biased variance var = mean((x - mean x)^2).
    """
    xp = array_module(x)
    if kind == "rmsnorm":
        ms = xp.mean(x * x, axis=-1, keepdims=True)
        rstd = 1.0 / xp.sqrt(ms + eps)
        xhat = x * rstd
        return xhat * weight, NormCache(xhat, rstd)
    xc = x - xp.mean(x, axis=-1, keepdims=True)
    var = xp.mean(xc * xc, axis=-1, keepdims=True)
    rstd = 1.0 / xp.sqrt(var + eps)
    xhat = xc * rstd
    return xhat * weight + bias, NormCache(xhat, rstd)


def norm_backward_input(dy: np.ndarray, weight: np.ndarray, cache: NormCache,
                        kind: str) -> np.ndarray:
    """dL/dx of :func:`norm_forward`, with g = dy * w and r = rstd:

    - rmsnorm: dx = r * (g - xhat * mean(g * xhat));
    - layernorm: dx = r * (g - mean(g) - xhat * mean(g * xhat)).
    """
    xp = array_module(dy)
    xhat, rstd = cache
    g = dy * weight
    proj = xp.mean(g * xhat, axis=-1, keepdims=True)
    if kind == "rmsnorm":
        return rstd * (g - xhat * proj)
    return rstd * (g - xp.mean(g, axis=-1, keepdims=True) - xhat * proj)


def norm_backward_weight(dy: np.ndarray, cache: NormCache,
                         kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """dL/dw = sum_rows(dy * xhat); dL/db = sum_rows(dy) (layernorm only, else None)."""
    xp = array_module(dy)
    dw = xp.sum(dy * cache.xhat, axis=0)
    return dw, (xp.sum(dy, axis=0) if kind == "layernorm" else None)


def gelu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GeLU, tanh approximation (Hendrycks and Gimpel 2016, as in GPT-2):
    y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3). Returns (y, tanh(u))."""
    t = array_module(x).tanh(GELU_C * (x + GELU_A * (x * x * x)))
    return 0.5 * x * (1.0 + t), t


def gelu_backward(dy: np.ndarray, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """dy * y'(x), y' = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    du = GELU_C * (1.0 + (3.0 * GELU_A) * (x * x))
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


def swiglu_forward(gate: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SwiGLU's activation (Shazeer 2020, "GLU Variants Improve Transformer"):
    a = silu(g) ⊙ u with silu(g) = g · σ(g), σ(g) = 1 / (1 + e^{-g}). Returns (a, σ(g))."""
    sig = 1.0 / (1.0 + array_module(gate).exp(-gate))
    return gate * sig * up, sig


def swiglu_backward(da: np.ndarray, gate: np.ndarray, up: np.ndarray,
                    sig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dL/dg, dL/du) of :func:`swiglu_forward`: du = da ⊙ silu(g),
    dg = da ⊙ u ⊙ σ(g)(1 + g(1 - σ(g)))."""
    return da * up * (sig * (1.0 + gate * (1.0 - sig))), da * (gate * sig)


class AttnCache(NamedTuple):
    q: np.ndarray  # (batch, heads, seq, d) views into the qkv activation
    k: np.ndarray  # (batch, heads, seq, d): each key/value head repeated r times (GQA)
    v: np.ndarray
    probs: np.ndarray  # softmax(mask(q k^T / sqrt(d))), (batch, heads, seq, seq)


def _causal_mask(xp: ModuleType, seq: int) -> np.ndarray:
    return xp.tril(xp.ones((seq, seq), dtype=bool))


def split_qkv(qkv: np.ndarray, batch: int, seq: int, heads: int,
              kv_heads: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """q ``(batch, heads, seq, d)``, k and v ``(batch, kv_heads, seq, d)`` of a
    ``(batch*seq, (heads + 2 kv_heads) d)`` activation in the grouped head-major layout of
    :mod:`ringpipe.model.params` (per key/value group [q .. q | k | v])."""
    kv = heads if kv_heads is None else kv_heads
    r = heads // kv
    d = qkv.shape[1] // (heads + 2 * kv)
    parts = qkv.reshape(batch, seq, kv, r + 2, d)
    q = parts[:, :, :, :r, :].reshape(batch, seq, heads, d).transpose(0, 2, 1, 3)
    k = parts[:, :, :, r, :].transpose(0, 2, 1, 3)
    v = parts[:, :, :, r + 1, :].transpose(0, 2, 1, 3)
    return q, k, v


def repeat_kv(x: np.ndarray, group: int) -> np.ndarray:
    """GQA: key/value heads ``(b, kv, s, d)`` repeated to ``(b, kv*group, s, d)``, so
    query head j meets key/value head ``j // group``; ``group == 1`` returns ``x``."""
    return x if group == 1 else array_module(x).repeat(x, group, axis=1)


def attention_forward(qkv: np.ndarray, batch: int, seq: int, heads: int,
                      kv_heads: int | None = None) -> tuple[np.ndarray, AttnCache]:
    """Multi-head causal scaled dot-product attention (Vaswani et al. 2017, eq. 1).

    ``qkv`` is ``(batch*seq, (heads + 2 kv_heads)*d)`` in the head-major layout of
    :mod:`ringpipe.model.params` (per head [q | k | v]; with grouped-query attention,
    Ainslie et al. 2023, per key/value group [q .. q | k | v]); ``heads`` and
    ``kv_heads`` (default ``heads``) count the heads in this array (all of them, or one
    tensor-parallel rank's). For each query head: ctx = softmax(mask(q k^T / sqrt(d))) v
    with its group's k and v, where the mask sets key positions after the query
    position to -inf. Returns ctx as ``(batch*seq, heads*d)``, head-major.
    """
    xp = array_module(qkv)
    kv = heads if kv_heads is None else kv_heads
    q, k, v = split_qkv(qkv, batch, seq, heads, kv)
    k, v = repeat_kv(k, heads // kv), repeat_kv(v, heads // kv)
    d = q.shape[-1]
    scores = (q @ k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(d))
    scores = xp.where(_causal_mask(xp, seq), scores, -math.inf)
    e = xp.exp(scores - xp.max(scores, axis=-1, keepdims=True))
    probs = e / xp.sum(e, axis=-1, keepdims=True)
    ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(batch * seq, heads * d)
    return ctx, AttnCache(q, k, v, probs)


def attention_backward(dctx: np.ndarray, cache: AttnCache, kv_heads: int | None = None
                       ) -> np.ndarray:
    """dL/dqkv of :func:`attention_forward` (same layout as qkv). With P the probs and
    S the scaled scores: dV = P^T dC, dP = dC V^T, dS = P * (dP - rowsum(dP * P)),
    dQ = dS K / sqrt(d), dK = dS^T Q / sqrt(d) (masked entries have P = 0). With GQA
    the dK and dV of the r query heads sharing a key/value head are summed."""
    xp = array_module(dctx)
    q, k, v, probs = cache
    batch, heads, seq, d = q.shape
    kv = heads if kv_heads is None else kv_heads
    r = heads // kv
    dc = dctx.reshape(batch, seq, heads, d).transpose(0, 2, 1, 3)
    dv = probs.transpose(0, 1, 3, 2) @ dc
    dp = dc @ v.transpose(0, 1, 3, 2)
    ds = probs * (dp - xp.sum(dp * probs, axis=-1, keepdims=True))
    ds = ds * (1.0 / math.sqrt(d))
    dq = ds @ k
    dk = ds.transpose(0, 1, 3, 2) @ q
    if r > 1:
        dk = xp.sum(dk.reshape(batch, kv, r, seq, d), axis=2)
        dv = xp.sum(dv.reshape(batch, kv, r, seq, d), axis=2)
    dqkv = xp.empty((batch, seq, kv, r + 2, d), dtype=dctx.dtype)
    dqkv[:, :, :, :r, :] = dq.transpose(0, 2, 1, 3).reshape(batch, seq, kv, r, d)
    dqkv[:, :, :, r, :] = dk.transpose(0, 2, 1, 3)
    dqkv[:, :, :, r + 1, :] = dv.transpose(0, 2, 1, 3)
    return dqkv.reshape(batch * seq, (heads + 2 * kv) * d)


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[Any, np.ndarray]:
    """Mean cross-entropy over the n rows and its gradient.

    loss = (1/n) sum_i [logsumexp(z_i) - z_i[t_i]]  (computed with the row max removed);
    dL/dz = (softmax(z) - onehot(t)) / n.

    The loss is a scalar of the logits' array module and dtype (a 0-d array on a GPU):
    ``float()`` of it is a device-to-host sync, left to the caller. Counts divide as
    scalars of the compute dtype, so float32 stays float32 under NumPy 1.x / CuPy 13
    value-based promotion too (a Python int >= 2**16 would widen it to float64).
    """
    xp = array_module(logits)
    n = logits.shape[0]
    count = logits.dtype.type(n)
    z = logits - xp.max(logits, axis=-1, keepdims=True)
    logp = z - xp.log(xp.sum(xp.exp(z), axis=-1, keepdims=True))
    rows = xp.arange(n)
    loss = -xp.sum(logp[rows, targets]) / count
    grad = xp.exp(logp)
    grad[rows, targets] -= 1.0
    return loss, grad / count


def mean_squared_error(pred: np.ndarray, target: np.ndarray) -> tuple[Any, np.ndarray]:
    """loss = (1/N) sum (pred - target)^2 over all N = n * width elements;
    dL/dpred = 2 (pred - target) / N. The loss as in :func:`cross_entropy`."""
    diff = pred - target
    count = diff.dtype.type(diff.size)
    return array_module(diff).sum(diff * diff) / count, (2.0 * diff) / count


def embedding_backward(ids: np.ndarray, dy: np.ndarray, vocab: int) -> np.ndarray:
    """dL/dE of y = E[ids]: row v is the sum of the rows of dy whose id is v, added in
    row order (the order of ``np.add.at``), so every device gives the same bits.

    On NumPy this is ``np.add.at``. On a GPU, ``add.at`` uses atomic adds whose order
    varies from run to run (and between TP ranks holding the same replicated
    embedding); instead rows are grouped by occurrence k (the k-th row carrying its
    id, found by a stable sort): within a group the ids are distinct, so group k is one
    collision-free scatter-add, and running k = 0, 1, ... adds each id's rows in row
    order. It takes one scatter per group, as many as the most frequent id's count.
    """
    xp = array_module(dy)
    grad = xp.zeros((vocab, dy.shape[1]), dtype=dy.dtype)
    if xp is np:
        np.add.at(grad, ids, dy)
        return grad
    n = ids.shape[0]
    if n == 0:
        return grad
    order = xp.argsort(ids, kind="stable")
    ranked = ids[order]
    occurrence = xp.arange(n) - xp.searchsorted(ranked, ranked, side="left")
    for k in range(int(occurrence.max()) + 1):
        rows = order[occurrence == k]
        grad[ids[rows]] += dy[rows]
    return grad
