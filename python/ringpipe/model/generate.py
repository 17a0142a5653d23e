"""Single-device greedy text generation with a KV cache: the inference reference.

Every parallel inference run (:mod:`ringpipe.runtime.inference`) is verified against
:func:`generate`, written as plainly as :mod:`ringpipe.model.reference`: full matrices,
the whole batch, one loop over layers. For a batch of B prompts of L token ids::

    prefill:  x = embed[prompt]                      (all L positions at once)
              per block: x += attn(norm1 x) using and filling the KV cache;
                         x += mlp(norm2 x)
              logits_0 = head(final_norm(x[last position]))   token_0 = argmax
    decode:   for k = 1 .. K-1: the same on the one position token_{k-1}
              (attending to the cache) gives logits_k, token_k = argmax logits_k

Greedy decoding takes the arg max of the logits (the first index on a tie). The model
has no positional embedding (see :class:`~ringpipe.model.config.ModelConfig`), so
``config.seq`` does not bound generation: the cache holds L + K - 1 positions.

The same code runs in float64 and float32 and on NumPy or CuPy: the array module
comes from the parameters (:mod:`ringpipe.arrays`); results come back as NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringpipe.arrays import array_module, is_array, to_host
from ringpipe.limits import DEFAULT_LIMITS, Limits
from ringpipe.model import functional as F
from ringpipe.model.config import ModelConfig
from ringpipe.model.kv_cache import KVCache, cached_attention
from ringpipe.model.params import check_arrays, param_shapes
from ringpipe.validation import check_int

__all__ = ["GenerateResult", "check_prompts", "generate"]


@dataclass(frozen=True)
class GenerateResult:
    """``tokens`` ``(B, K)`` int64: the K generated ids per prompt; ``logits``
    ``(B, K, vocab)``: the logits each token was chosen from (NumPy arrays)."""

    tokens: np.ndarray
    logits: np.ndarray


def check_prompts(config: ModelConfig, prompts: object) -> np.ndarray:
    """Raise unless ``prompts`` is an integer ``(B, L)`` array (NumPy or CuPy) of ids in
    [0, vocab) with B, L >= 1, and the model is a language model (vocab > 0)."""
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
    if not config.vocab:
        raise ValueError("config.vocab must be > 0: generation needs a token vocabulary")
    if not is_array(prompts):
        raise TypeError(f"prompts must be an array of token ids, got {type(prompts).__name__}")
    if prompts.ndim != 2 or prompts.shape[0] < 1 or prompts.shape[1] < 1:
        raise ValueError(f"prompts must have shape (batch >= 1, length >= 1), "
                         f"got {prompts.shape}")
    if not np.issubdtype(prompts.dtype, np.integer):
        raise TypeError(f"prompts must hold integer token ids, got dtype {prompts.dtype}")
    if bool((prompts.min() < 0) | (prompts.max() >= config.vocab)):
        raise ValueError(f"prompts token ids must lie in [0, vocab={config.vocab})")
    return prompts


def _norm(params: dict, prefix: str, x: np.ndarray, config: ModelConfig) -> np.ndarray:
    return F.norm_forward(x, params[f"{prefix}.weight"], params.get(f"{prefix}.bias"),
                          config.norm, config.eps)[0]


def _forward(config: ModelConfig, params: dict, ids: np.ndarray, cache: KVCache) -> np.ndarray:
    """Run ``ids`` ``(B, n)`` through the model at the cache's next positions; return
    the last position's logits ``(B, vocab)``."""
    b, n = ids.shape
    x = params["embed.weight"][ids.reshape(b * n)]
    for i in range(config.layers):
        p = f"layers.{i}"
        if config.has_attention:
            h1 = _norm(params, f"{p}.norm1", x, config)
            qkv = h1 @ params[f"{p}.attn.qkv.weight"] + params[f"{p}.attn.qkv.bias"]
            q, k, v = F.split_qkv(qkv, b, n, config.heads, config.kv_heads)
            start = cache.lengths[i]
            keys, values = cache.append(i, k, v)
            ctx = cached_attention(q, keys, values, start)
            x = x + (ctx @ params[f"{p}.attn.out.weight"] + params[f"{p}.attn.out.bias"])
        h2 = _norm(params, f"{p}.norm2", x, config)
        act = F.gelu_forward(h2 @ params[f"{p}.mlp.fc1.weight"] + params[f"{p}.mlp.fc1.bias"])[0]
        x = x + (act @ params[f"{p}.mlp.fc2.weight"] + params[f"{p}.mlp.fc2.bias"])
    last = array_module(x).ascontiguousarray(x.reshape(b, n, config.hidden)[:, -1])
    return _norm(params, "final_norm", last, config) @ params["head.weight"] + params["head.bias"]


def generate(config: ModelConfig, params: dict[str, np.ndarray], prompts: np.ndarray,
             new_tokens: int, *, limits: Limits = DEFAULT_LIMITS) -> GenerateResult:
    """Greedily generate ``new_tokens`` tokens after each of the B prompts.

    ``params``: the full model (:func:`~ringpipe.model.params.init_params`), NumPy or
    CuPy arrays of ``config.dtype``; ``prompts``: ``(B, L)`` token ids on the same
    device. One prefill of the L prompt positions, then ``new_tokens - 1`` decode steps.
    ``limits``: the KV cache and logits are refused by name, before they are allocated,
    when they would exceed ``limits.max_memory``.
    """
    prompts = check_prompts(config, prompts)
    config.check_generates("generate")
    check_int("new_tokens", new_tokens, 1)
    check_arrays("params", params, param_shapes(config), config.np_dtype, device_ok=True)
    xp = array_module(params["embed.weight"])
    if array_module(prompts) is not xp:
        raise TypeError(f"prompts is a {type(prompts).__module__} array but the params are "
                        f"{xp.__name__} arrays; pass them on one device")
    b, length = prompts.shape
    layers = config.layers if config.has_attention else 0
    # refuse an absurd request by name before allocating (not a MemoryError midway)
    cache_bytes = (2 * layers * b * (config.kv_heads or 1) * config.head_dim
                   * (length + new_tokens - 1) + b * new_tokens * config.vocab)
    limits.require("max_memory", "generate: KV cache and logits bytes for "
                              f"new_tokens={new_tokens}", cache_bytes * config.np_dtype.itemsize)
    cache = KVCache.allocate(layers, b, config.kv_heads, config.head_dim,  # type: ignore[arg-type]
                             length + new_tokens - 1, config.np_dtype, xp)
    logits, tokens = [], []
    ids = prompts
    for _ in range(new_tokens):
        step = _forward(config, params, ids, cache)
        ids = xp.argmax(step, axis=-1).reshape(b, 1)
        logits.append(step)
        tokens.append(ids[:, 0])
    return GenerateResult(to_host(xp.stack(tokens, axis=1)).astype(np.int64),
                          to_host(xp.stack(logits, axis=1)))
