"""One pipeline stage's tensor-parallel prefill and decode, with its KV-cache shard.

As in :mod:`ringpipe.model.stage`, a stage holds blocks ``[first, last)`` (the first
also the embedding, the last the final norm and head) and the API is per-rank lists:
all T ranks of the TP group in one process, or with ``local=True`` one rank per
process (lists of length 1, ``all_reduce`` summing across processes).

**Sharding** (Megatron-LM, Shoeybi et al. 2019; GQA as in Pope et al. 2022, section
3.3, and TensorRT-LLM): rank t computes query heads ``[t·a/T, (t+1)·a/T)``. Its KV
cache holds only the key/value heads those queries read:

* T divides kv_heads: kv_heads/T whole groups each, the same contiguous column block
  of ``attn.qkv`` as training (:mod:`ringpipe.model.sharding`);
* kv_heads divides T (more ranks than key/value heads): each rank holds the one
  key/value head of its queries, replicated on T/kv_heads ranks, so the cache is not
  split further and each replica computes the same keys.

fc1/fc2 and the attention output split as in training; norms, embedding and head are
replicated. A block makes 2 all-reduces (attention output and fc2, Megatron's g) per
step, whatever the number of positions: the L prompt positions at once in prefill,
one position per sequence in decode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ringpipe.arrays import array_module
from ringpipe.model import functional as F
from ringpipe.model import layers as L
from ringpipe.model.config import ModelConfig
from ringpipe.model.kv_cache import KVCache, PagedKVCache, cached_attention
from ringpipe.model.params import check_arrays, check_params
from ringpipe.model.sharding import shard_param
from ringpipe.model.stage_spec import StageSpec

__all__ = ["InferenceSpec", "inference_shards", "qkv_columns", "ragged_stage_step",
           "stage_step"]


def qkv_columns(config: ModelConfig, tp: int, rank: int) -> np.ndarray:
    """Columns of ``attn.qkv`` that tp rank ``rank`` of ``tp`` holds, in its local
    grouped layout: per key/value group it touches, its query heads then k and v."""
    config.check_tp(tp, replicate_kv=True)
    d, r = config.head_dim, config.group_size
    per = config.heads // tp
    mine = range(rank * per, (rank + 1) * per)
    cols: list[int] = []
    for g in sorted({h // r for h in mine}):
        base = g * (r + 2) * d
        for h in (h for h in mine if h // r == g):
            cols.extend(range(base + (h - g * r) * d, base + (h - g * r + 1) * d))
        cols.extend(range(base + r * d, base + (r + 2) * d))
    return np.asarray(cols, dtype=np.int64)


@dataclass(frozen=True)
class InferenceSpec(StageSpec):
    """A :class:`~ringpipe.model.stage_spec.StageSpec` for generation: GQA key/value
    heads may be replicated where ``tp`` exceeds them, the model must have a vocabulary,
    and each rank holds a KV-cache shard (:meth:`allocate`)."""

    replicate_kv: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.config.vocab:
            raise ValueError("InferenceSpec.config.vocab must be > 0 (token generation)")

    @property
    def heads_here(self) -> int:
        """Query heads per rank: heads / tp."""
        return self.config.heads // self.tp

    @property
    def kv_heads_here(self) -> int:
        """Key/value heads per rank (and in its cache): kv_heads / tp, at least 1."""
        return max(self.config.kv_heads // self.tp, 1)  # type: ignore[operator]

    @property
    def attention_layers(self) -> int:
        """Layers with a KV cache on this stage."""
        return (self.last - self.first) if self.config.has_attention else 0

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and per-rank shapes of this stage's parameters, forward order: the
        training shards', with ``attn.qkv`` holding :func:`qkv_columns`."""
        width = (self.heads_here + 2 * self.kv_heads_here) * self.config.head_dim
        out = super().param_shapes()
        for name in out:
            if name.endswith("attn.qkv.weight"):
                out[name] = (self.config.hidden, width)
            elif name.endswith("attn.qkv.bias"):
                out[name] = (width,)
        return out

    def allocate(self, batch: int, capacity: int, xp: object = np) -> list[KVCache]:
        """One empty KV-cache shard per rank here, for ``batch`` sequences of up to
        ``capacity`` positions (on ``xp``'s device)."""
        cfg = self.config
        return [KVCache.allocate(self.attention_layers, batch, self.kv_heads_here,
                                 cfg.head_dim, capacity, cfg.np_dtype, xp)  # type: ignore[arg-type]
                for _ in range(self.ranks_here)]

    def allocate_paged(self, num_blocks: int, block_size: int,
                       xp: object = np) -> list[PagedKVCache]:
        """One paged KV-cache shard per rank here: ``num_blocks`` blocks of
        ``block_size`` positions (continuous batching, :func:`ragged_stage_step`)."""
        cfg = self.config
        return [PagedKVCache.allocate(self.attention_layers, num_blocks, self.kv_heads_here,
                                      cfg.head_dim, block_size, cfg.np_dtype, xp)  # type: ignore[arg-type]
                for _ in range(self.ranks_here)]


def inference_shards(config: ModelConfig, params: dict[str, np.ndarray],
                     tp: int) -> list[dict[str, np.ndarray]]:
    """Rank t's inference shard of every parameter, for t in range(tp): fresh
    C-contiguous copies; ``attn.qkv`` by :func:`qkv_columns`, the rest as training's
    :func:`~ringpipe.model.sharding.shard_params`."""
    config.check_tp(tp, replicate_kv=True)
    check_params(config, params)
    cols = [qkv_columns(config, tp, t) for t in range(tp)]
    shards: list[dict[str, np.ndarray]] = [{} for _ in range(tp)]
    for name, value in params.items():
        for t in range(tp):
            if name.endswith("attn.qkv.weight"):
                piece = value[:, cols[t]]
            elif name.endswith("attn.qkv.bias"):
                piece = value[cols[t]]
            else:  # the training split (GQA's qkv columns are the one exception)
                shards[t][name] = shard_param(name, value, tp, t)
                continue
            shards[t][name] = np.ascontiguousarray(piece).copy()
    return shards


def _norm(shard: dict, prefix: str, x: np.ndarray, config: ModelConfig) -> np.ndarray:
    return F.norm_forward(x, shard[f"{prefix}.weight"], shard.get(f"{prefix}.bias"),
                          config.norm, config.eps)[0]


def _weights(shards: list[dict], name: str) -> list[np.ndarray]:
    return [s[name] for s in shards]


def stage_step(spec: InferenceSpec, shards: list[dict[str, np.ndarray]], xs: list[np.ndarray],
               caches: list[KVCache], all_reduce: L.AllReduce) -> list[np.ndarray]:
    """Run n new positions of b sequences through the stage, extending its caches.

    ``xs[t]``: token ids ``(b, n)`` on the first stage, else activations
    ``(b, n, hidden)``. Returns ``(b, n, hidden)`` activations per rank, or on the last
    stage the last position's logits ``(b, vocab)`` per rank (identical on every rank).
    """
    if not isinstance(spec, InferenceSpec):
        raise TypeError(f"spec must be an InferenceSpec, got {type(spec).__name__}")
    L.check_all_reduce(all_reduce)
    cfg, here = spec.config, spec.ranks_here
    for name, value in (("shards", shards), ("xs", xs), ("caches", caches)):
        if not isinstance(value, list) or len(value) != here:
            raise ValueError(f"{name} must be a list with one entry per tp rank here ({here})")
    for t, (shard, cache) in enumerate(zip(shards, caches, strict=True)):
        check_arrays(f"shards[{t}]", shard, spec.param_shapes(), cfg.np_dtype, exact=False,
                     device_ok=True)
        if not isinstance(cache, KVCache) or len(cache.keys) != spec.attention_layers:
            raise ValueError(f"caches[{t}] must be a KVCache of {spec.attention_layers} "
                             "layers (InferenceSpec.allocate)")
    b, n = int(xs[0].shape[0]), int(xs[0].shape[1])
    if spec.is_first:
        if xs[0].ndim != 2 or not np.issubdtype(xs[0].dtype, np.integer):
            raise ValueError(f"xs[0] must be (batch, n) token ids on the first stage, "
                             f"got {xs[0].dtype} {xs[0].shape}")
        hs = [s["embed.weight"][x.reshape(b * n)] for s, x in zip(shards, xs, strict=True)]
    else:
        if xs[0].shape[2:] != (cfg.hidden,) or xs[0].dtype != cfg.np_dtype:
            raise ValueError(f"xs[0] must be (batch, n, {cfg.hidden}) {cfg.np_dtype}, "
                             f"got {xs[0].dtype} {xs[0].shape}")
        hs = [x.reshape(b * n, cfg.hidden) for x in xs]

    def attend(t: int, local: int, z: np.ndarray) -> np.ndarray:
        q, k, v = F.split_qkv(z, b, n, spec.heads_here, spec.kv_heads_here)
        start = caches[t].lengths[local]
        keys, values = caches[t].append(local, k, v)
        return cached_attention(q, keys, values, start)

    hs = _blocks(spec, shards, hs, attend, all_reduce)
    if not spec.is_last:
        return [h.reshape(b, n, cfg.hidden) for h in hs]
    xp = array_module(hs[0])
    lasts = [xp.ascontiguousarray(h.reshape(b, n, cfg.hidden)[:, -1]) for h in hs]
    return _head(spec, shards, lasts)


def _head(spec: InferenceSpec, shards: list[dict], lasts: list[np.ndarray]) -> list[np.ndarray]:
    """Logits of the rows ``lasts`` (one per sequence): final norm, then the head."""
    return [_norm(s, "final_norm", h, spec.config) @ s["head.weight"] + s["head.bias"]
            for s, h in zip(shards, lasts, strict=True)]


def _blocks(spec: InferenceSpec, shards: list[dict], hs: list[np.ndarray], attend: Callable,
            all_reduce: L.AllReduce) -> list[np.ndarray]:
    """The stage's blocks on rows ``hs`` (one ``(rows, hidden)`` array per rank);
    ``attend(t, local layer, qkv rows)`` is rank t's attention context of those rows."""
    cfg = spec.config
    for local, i in enumerate(range(spec.first, spec.last)):
        p = f"layers.{i}"
        if cfg.has_attention:
            h1 = [_norm(s, f"{p}.norm1", h, cfg) for s, h in zip(shards, hs, strict=True)]
            qkv = L.column_parallel_forward(h1, _weights(shards, f"{p}.attn.qkv.weight"),
                                            _weights(shards, f"{p}.attn.qkv.bias"))
            ctx = [attend(t, local, z) for t, z in enumerate(qkv)]
            out = L.row_parallel_forward(ctx, _weights(shards, f"{p}.attn.out.weight"),
                                         _weights(shards, f"{p}.attn.out.bias"), all_reduce)
            hs = [h + o for h, o in zip(hs, out, strict=True)]
        h2 = [_norm(s, f"{p}.norm2", h, cfg) for s, h in zip(shards, hs, strict=True)]
        pre = L.column_parallel_forward(h2, _weights(shards, f"{p}.mlp.fc1.weight"),
                                        _weights(shards, f"{p}.mlp.fc1.bias"))
        act = [F.gelu_forward(z)[0] for z in pre]
        out = L.row_parallel_forward(act, _weights(shards, f"{p}.mlp.fc2.weight"),
                                     _weights(shards, f"{p}.mlp.fc2.bias"), all_reduce)
        hs = [h + o for h, o in zip(hs, out, strict=True)]
    return hs


def ragged_stage_step(spec: InferenceSpec, shards: list[dict[str, np.ndarray]],
                      xs: list[np.ndarray], caches: list[PagedKVCache],
                      segments: Sequence[tuple[np.ndarray, int, int]],
                      all_reduce: L.AllReduce) -> list[np.ndarray]:
    """One iteration of continuous batching through the stage: requests' rows flattened.

    ``segments[j] = (block table, start, n)``: request j's n new positions ``start ..
    start+n-1`` (a prefill chunk, or one decode position), its rows contiguous and in
    order in ``xs[t]``: N = Σ n token ids ``(N,)`` on the first stage, else activations
    ``(N, hidden)``. Every matmul runs on all N rows at once; attention runs per request
    against its paged cache (vLLM's flattened batch, Kwon et al. 2023). Returns ``(N,
    hidden)`` activations per rank, or on the last stage each segment's last-position
    logits ``(len(segments), vocab)`` per rank.
    """
    if not isinstance(spec, InferenceSpec):
        raise TypeError(f"spec must be an InferenceSpec, got {type(spec).__name__}")
    L.check_all_reduce(all_reduce)
    cfg = spec.config
    sizes = [int(n) for _, _, n in segments]
    total = sum(sizes)
    for name, value in (("shards", shards), ("xs", xs), ("caches", caches)):
        if not isinstance(value, list) or len(value) != spec.ranks_here:
            raise ValueError(f"{name} must be a list with one entry per tp rank here "
                             f"({spec.ranks_here})")
    want = (total,) if spec.is_first else (total, cfg.hidden)
    if tuple(xs[0].shape) != want or min(sizes, default=1) < 1:
        raise ValueError(f"xs[0] must be {want} for segments of {sizes} positions, got "
                         f"{tuple(xs[0].shape)}")
    hs = ([s["embed.weight"][x] for s, x in zip(shards, xs, strict=True)] if spec.is_first
          else list(xs))
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)

    def attend(t: int, local: int, z: np.ndarray) -> np.ndarray:
        parts = []
        for j, (table, start, n) in enumerate(segments):
            q, k, v = F.split_qkv(z[offsets[j]:offsets[j + 1]], 1, int(n), spec.heads_here,
                                  spec.kv_heads_here)
            keys, values = caches[t].append(local, table, int(start), k, v)
            parts.append(cached_attention(q, keys, values, int(start)))
        return array_module(z).concatenate(parts, axis=0)

    hs = _blocks(spec, shards, hs, attend, all_reduce)
    if not spec.is_last:
        return hs
    xp = array_module(hs[0])
    return _head(spec, shards, [xp.ascontiguousarray(h[offsets[1:] - 1]) for h in hs])
