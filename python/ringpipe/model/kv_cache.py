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

**Paged** (Kwon et al., SOSP'23, "Efficient Memory Management for Large Language Model
Serving with PagedAttention", section 4): for continuous batching the cache is a pool of
fixed-size blocks of ``block_size`` positions (:class:`PagedKVCache`, per layer ``(blocks,
kv_heads, block_size, d)``), a request owns a *block table* (its blocks in position order,
anywhere in the pool), and a :class:`BlockPool` keeps the free list. Position ``i`` of a
request lives in block ``table[i // block_size]`` at offset ``i % block_size``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from ringpipe.arrays import array_kind, array_module, is_array
from ringpipe.model.functional import repeat_kv
from ringpipe.validation import check_int

__all__ = ["BlockPool", "KVCache", "PagedKVCache", "cached_attention"]


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


class BlockPool:
    """The free list of ``num_blocks`` KV blocks of ``block_size`` positions each.

    :meth:`allocate` pops from the end of the list and :meth:`free` pushes back, so the
    most recently freed blocks are reused first (a finished request's blocks go straight
    to the next request that needs blocks). Mutable state of one scheduler run."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        self.num_blocks = check_int("BlockPool: num_blocks", num_blocks)
        self.block_size = check_int("BlockPool: block_size", block_size)
        self._free = list(range(num_blocks - 1, -1, -1))
        self._held = bytearray(num_blocks)  # 1 where a block is allocated

    @property
    def num_free(self) -> int:
        """Blocks not held by any request."""
        return len(self._free)

    def blocks_for(self, positions: int) -> int:
        """Blocks that hold ``positions`` positions: ceil(positions / block_size)."""
        return -(-check_int("BlockPool.blocks_for: positions", positions, 0) // self.block_size)

    def allocate(self, n: int) -> list[int]:
        """``n`` free blocks (ValueError, before taking any, when fewer are free)."""
        check_int("BlockPool.allocate: n", n, 0)
        if n > len(self._free):
            raise ValueError(f"BlockPool.allocate: {n} blocks asked, {len(self._free)} of "
                             f"{self.num_blocks} free")
        taken = self._free[len(self._free) - n:][::-1]
        del self._free[len(self._free) - n:]
        for b in taken:
            self._held[b] = 1
        return taken

    def free(self, blocks: list[int]) -> None:
        """Return ``blocks`` to the free list (ValueError for a block already free)."""
        for b in blocks:
            if not 0 <= b < self.num_blocks or not self._held[b]:
                raise ValueError(f"BlockPool.free: block {b} is not an allocated block")
        for b in blocks:
            self._held[b] = 0
        self._free.extend(reversed(blocks))


@dataclass
class PagedKVCache:
    """Keys and values of ``len(keys)`` layers in blocks: ``keys[i]``/``values[i]`` are
    ``(num_blocks, kv_heads, block_size, d)``; which block holds which positions of which
    request is the caller's block table (:class:`BlockPool`)."""

    keys: list[np.ndarray]
    values: list[np.ndarray]

    @classmethod
    def allocate(cls, layers: int, num_blocks: int, kv_heads: int, head_dim: int,
                 block_size: int, dtype: np.dtype, xp: ModuleType = np) -> PagedKVCache:
        """Zeroed blocks for ``layers`` layers, on ``xp``'s device (NumPy or CuPy)."""
        check_int("PagedKVCache: layers", layers, 0)
        for name, value in (("num_blocks", num_blocks), ("kv_heads", kv_heads),
                            ("head_dim", head_dim), ("block_size", block_size)):
            check_int(f"PagedKVCache: {name}", value, 1)
        shape = (num_blocks, kv_heads, block_size, head_dim)
        return cls([xp.zeros(shape, dtype=dtype) for _ in range(layers)],
                   [xp.zeros(shape, dtype=dtype) for _ in range(layers)])

    @property
    def block_size(self) -> int:
        """Positions per block."""
        return int(self.keys[0].shape[2]) if self.keys else 1

    @property
    def nbytes(self) -> int:
        """Bytes allocated: 2 · layers · num_blocks · kv_heads · block_size · d · itemsize."""
        return int(sum(k.nbytes + v.nbytes for k, v in zip(self.keys, self.values,
                                                           strict=True)))

    def _slots(self, table: np.ndarray, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        bs = self.block_size
        positions = np.arange(start, start + n)
        if start < 0 or len(table) * bs < start + n:
            raise ValueError(f"PagedKVCache: positions [{start}, {start + n}) need "
                             f"{-(-(start + n) // bs)} blocks, the table has {len(table)}")
        return np.asarray(table)[positions // bs], positions % bs

    def append(self, layer: int, table: np.ndarray, start: int, k: np.ndarray,
               v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Write one request's ``k``, ``v`` ``(1, kv_heads, n, d)`` at positions ``start ..
        start+n-1`` of its block ``table``; return its keys and values of positions
        ``0 .. start+n-1``, ``(1, kv_heads, start+n, d)`` (gathered copies)."""
        check_int("PagedKVCache.append: layer", layer, 0, len(self.keys) - 1)
        n = int(k.shape[2])
        if k.shape != v.shape or k.shape[0] != 1 or k.shape[1] != self.keys[layer].shape[1]:
            raise ValueError(f"PagedKVCache.append: k {k.shape} and v {v.shape} must be (1, "
                             f"{self.keys[layer].shape[1]}, n, d)")
        blocks, offsets = self._slots(table, start, n)
        self.keys[layer][blocks, :, offsets, :] = k[0].transpose(1, 0, 2)
        self.values[layer][blocks, :, offsets, :] = v[0].transpose(1, 0, 2)
        total = start + n
        used = np.asarray(table)[:-(-total // self.block_size)]
        kv, d = self.keys[layer].shape[1], self.keys[layer].shape[3]

        def gather(pages: np.ndarray) -> np.ndarray:
            whole = pages[used].transpose(1, 0, 2, 3).reshape(kv, -1, d)
            return whole[None, :, :total]

        return gather(self.keys[layer]), gather(self.values[layer])
