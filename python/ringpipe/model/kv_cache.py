"""The key/value cache of autoregressive decoding, and attention against it.

Generation runs the prompt through the model once (*prefill*: all L positions in one
forward pass) and then one position per sequence per step (*decode*). Each attention
layer's keys and values of earlier positions never change, so they are kept
(Pope et al. 2022, "Efficiently Scaling Transformer Inference", section 2): step t
appends its new keys and values and attends to all of them instead of recomputing
the prefix, which turns an O(T^2) pass per token into O(T).

One :class:`KVCache` holds, for some layers on one rank, arrays ``(batch, kv_heads,
capacity, d)`` of keys and of values. Sharded, each tensor-parallel rank holds only
its key/value heads and each pipeline stage only its layers, so the cache of one rank
is ``2 · layers_here · kv_heads_here · d · bytes`` per token per sequence
(:attr:`KVCache.nbytes`; :func:`ringpipe.cost.inference.model.kv_cache_bytes` prices it).

With grouped-query attention (Ainslie et al. 2023) the cache holds ``kv_heads`` heads
and query head j reads key/value head ``j // r`` (r = heads / kv_heads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from ringpipe.arrays import array_kind, array_module, is_array
from ringpipe.model.functional import repeat_kv
from ringpipe.validation import check_int

__all__ = ["KVCache", "cached_attention"]


@dataclass
class KVCache:
    """Keys and values of ``len(keys)`` layers: ``keys[i]`` and ``values[i]`` are
    ``(batch, kv_heads, capacity, d)``; ``lengths[i]`` positions of layer i are filled.

    It is mutable state by nature (it grows by one position per decode step); it lives
    in a runtime's worker or a :func:`~ringpipe.model.generate.generate` call, never in
    module-level state.
    """

    keys: list[np.ndarray]
    values: list[np.ndarray]
    lengths: list[int]

    @classmethod
    def allocate(cls, layers: int, batch: int, kv_heads: int, head_dim: int,
                 capacity: int, dtype: np.dtype, xp: ModuleType = np) -> KVCache:
        """Zeroed caches for ``layers`` layers, on ``xp``'s device (NumPy or CuPy)."""
        check_int("KVCache: layers", layers, 0)
        for name, value in (("batch", batch), ("kv_heads", kv_heads), ("head_dim", head_dim),
                            ("capacity", capacity)):
            check_int(f"KVCache: {name}", value, 1)
        shape = (batch, kv_heads, capacity, head_dim)
        return cls([xp.zeros(shape, dtype=dtype) for _ in range(layers)],
                   [xp.zeros(shape, dtype=dtype) for _ in range(layers)], [0] * layers)

    @property
    def capacity(self) -> int:
        """Positions each layer can hold."""
        return int(self.keys[0].shape[2]) if self.keys else 0

    @property
    def nbytes(self) -> int:
        """Bytes allocated: 2 · layers · batch · kv_heads · capacity · d · itemsize."""
        return int(sum(k.nbytes + v.nbytes for k, v in zip(self.keys, self.values,
                                                           strict=True)))

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Write ``k``, ``v`` ``(batch, kv_heads, n, d)`` after layer ``layer``'s filled
        positions; return every filled position's keys and values (views). ``k`` and ``v``
        must be arrays (TypeError otherwise: a nested list has no shape to check)."""
        check_int("KVCache.append: layer", layer, 0, len(self.keys) - 1)
        for name, a in (("k", k), ("v", v)):
            if not is_array(a):
                raise TypeError(f"KVCache.append: {name} must be an array (batch, kv_heads, "
                                f"n, d) like the cache's {array_kind(self.keys[layer])}, got "
                                f"{type(a).__name__}")
        start, n = self.lengths[layer], int(k.shape[2])
        if k.shape != v.shape or k.shape[:2] + k.shape[3:] != (
                self.keys[layer].shape[:2] + self.keys[layer].shape[3:]):
            raise ValueError(f"KVCache.append: k {k.shape} and v {v.shape} must be (batch, "
                             f"kv_heads, n, d) = {self.keys[layer].shape[:2]} + (n,) + "
                             f"{self.keys[layer].shape[3:]}")
        if start + n > self.capacity:
            raise ValueError(f"KVCache.append: layer {layer} holds {start} of {self.capacity} "
                             f"positions; {n} more do not fit")
        self.keys[layer][:, :, start:start + n] = k
        self.values[layer][:, :, start:start + n] = v
        self.lengths[layer] = start + n
        return self.keys[layer][:, :, :start + n], self.values[layer][:, :, :start + n]


def cached_attention(q: np.ndarray, keys: np.ndarray, values: np.ndarray,
                     start: int) -> np.ndarray:
    """Causal attention of n new queries against T = start + n cached positions.

    ``q`` is ``(batch, heads, n, d)`` for absolute positions ``start .. start+n-1``;
    ``keys``/``values`` ``(batch, kv_heads, T, d)``. Query i sees keys j <= start + i:
    ctx = softmax(mask(q K^T / sqrt(d))) V (Vaswani et al. 2017, eq. 1). With n = T
    (prefill) this is :func:`ringpipe.model.functional.attention_forward`'s mask; with
    n = 1 (decode) nothing is masked. Returns ctx ``(batch*n, heads*d)``, head-major.
    """
    xp = array_module(q)
    batch, heads, n, d = q.shape
    group = heads // keys.shape[1]
    k, v = repeat_kv(keys, group), repeat_kv(values, group)
    scores = (q @ k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(d))
    if n > 1:
        total = keys.shape[2]
        visible = xp.arange(total)[None, :] <= (start + xp.arange(n))[:, None]
        scores = xp.where(visible, scores, -math.inf)
    e = xp.exp(scores - xp.max(scores, axis=-1, keepdims=True))
    probs = e / xp.sum(e, axis=-1, keepdims=True)
    return (probs @ v).transpose(0, 2, 1, 3).reshape(batch * n, heads * d)
