"""Published model shapes, as :class:`~ringpipe.model.config.ModelConfig` presets.

GPT-3 (Brown et al. 2020, Table 2.1); Llama 2 (Touvron et al. 2023, and the released
configs); Llama 3 / 3.1 (Llama Team 2024, "The Llama 3 Herd of Models", Table 3).
:func:`gpt_like` and :func:`llama_like` build the two families' architecture details
for other shapes.

Mixture-of-experts models (their released ``config.json`` files):

* ``mixtral-8x7b`` / ``mixtral-8x22b`` (Jiang et al. 2024, "Mixtral of Experts";
  mistralai/Mixtral-8x7B-v0.1 and -8x22B-v0.1): every layer MoE, 8 experts, top 2,
  renormalised; the sequence is 4096, the length of the published training benchmarks
  (Megatron-core's, NeMo's) rather than the 32k context (``--seq`` changes it);
* ``qwen3-30b-a3b`` (Qwen Team 2025, Qwen3 technical report; Qwen/Qwen3-30B-A3B): 128
  experts of 768, top 8, renormalised, heads of 128 (wider than hidden / heads); its
  per-head q/k RMSNorms (256 weights a layer) are left out;
* ``deepseek-v3-like`` (DeepSeek-AI 2024, "DeepSeek-V3 Technical Report", §4.2): 61
  layers of 7168, the first 3 dense (FFN 18432), then 256 routed experts of 2048, top
  8, plus 1 shared expert; sequence 4096, vocabulary 129280. **Simplified**:
  multi-head latent attention (MLA) is priced as grouped-query attention with 128
  query heads of 128 and 2 key/value heads, whose K/V per token (512 elements) is
  close to MLA's real cache (a 512-wide latent plus a 64-wide RoPE key, 576); its
  low-rank projections (about 187M weights a layer) are priced as that attention's
  239M; the sigmoid router with bias-based balancing is priced as the softmax router
  (same FLOPs), and the multi-token-prediction module is left out. The total is 674B
  against the report's 671B. The cost model prices them all; the NumPy model builds the
``ModelConfig`` defaults (:meth:`~ringpipe.model.config.ModelConfig.check_executable`).
"""

from __future__ import annotations

from types import MappingProxyType

from ringpipe.model.config import ModelConfig

__all__ = ["MODEL_PRESETS", "gpt_like", "llama_like", "model_preset", "small_shape"]


def gpt_like(name: str, layers: int, hidden: int, heads: int, seq: int, vocab: int,
             **details: object) -> ModelConfig:
    """A GPT-style model (Radford et al. 2019; Brown et al. 2020): LayerNorm, biases on
    every linear, a GeLU MLP of 4h, the output layer tied to the embedding, dropout;
    ``details`` override any field (e.g. ``learned_positions=True``)."""
    fields: dict[str, object] = dict(name=name, layers=layers, hidden=hidden, heads=heads,
                                     seq=seq, vocab=vocab, norm="layernorm", biases=True,
                                     tied_embeddings=True, dropout=True)
    return ModelConfig(**{**fields, **details})  # type: ignore[arg-type]


def llama_like(name: str, layers: int, hidden: int, heads: int, kv_heads: int, ffn: int,
               seq: int, vocab: int, **details: object) -> ModelConfig:
    """A Llama-style model (Touvron et al. 2023): RMSNorm, no biases, a SwiGLU MLP of
    width ``ffn``, grouped-query attention, an untied output layer, no dropout."""
    fields: dict[str, object] = dict(name=name, layers=layers, hidden=hidden, heads=heads,
                                     kv_heads=kv_heads, ffn=ffn, seq=seq, vocab=vocab,
                                     norm="rmsnorm", biases=False, gated_mlp=True,
                                     tied_embeddings=False, dropout=False)
    return ModelConfig(**{**fields, **details})  # type: ignore[arg-type]


def _moe(name: str, layers: int, hidden: int, heads: int, kv: int, experts: int, top_k: int,
         moe_ffn: int, vocab: int, **details: object) -> ModelConfig:
    fields: dict[str, object] = dict(experts=experts, top_k=top_k, moe_ffn=moe_ffn)
    return llama_like(name, layers, hidden, heads, kv, details.pop("ffn", moe_ffn), 4096,  # type: ignore[arg-type]
                      vocab, **{**fields, **details})


def _gpt(name: str, layers: int, hidden: int, heads: int) -> ModelConfig:
    return gpt_like(name, layers, hidden, heads, seq=2048, vocab=50257,
                    learned_positions=True)


def _llama(name: str, layers: int, hidden: int, heads: int, kv: int, ffn: int,
           seq: int, vocab: int) -> ModelConfig:
    return llama_like(name, layers, hidden, heads, kv, ffn, seq, vocab)


#: Published shapes: GPT-3 (Brown et al. 2020, Table 2.1); Llama 2 (Touvron et al. 2023,
#: and the released configs); Llama 3 / 3.1 (Llama Team 2024, "The Llama 3 Herd of
#: Models", Table 3); the MoE models of the module docstring.
MODEL_PRESETS = MappingProxyType({
    m.name: m for m in (
        _gpt("gpt3-175b", 96, 12288, 96),
        _llama("llama2-7b", 32, 4096, 32, 32, 11008, 4096, 32000),
        _llama("llama2-13b", 40, 5120, 40, 40, 13824, 4096, 32000),
        _llama("llama2-70b", 80, 8192, 64, 8, 28672, 4096, 32000),
        _llama("llama3-8b", 32, 4096, 32, 8, 14336, 8192, 128256),
        _llama("llama3-70b", 80, 8192, 64, 8, 28672, 8192, 128256),
        _llama("llama3-405b", 126, 16384, 128, 8, 53248, 8192, 128256),
        _moe("mixtral-8x7b", 32, 4096, 32, 8, 8, 2, 14336, 32000),
        _moe("mixtral-8x22b", 56, 6144, 48, 8, 8, 2, 16384, 32768),
        _moe("qwen3-30b-a3b", 48, 2048, 32, 4, 128, 8, 768, 151936, head_dim=128),
        _moe("deepseek-v3-like", 61, 7168, 128, 2, 256, 8, 2048, 129280, head_dim=128,
             ffn=18432, shared_experts=1, dense_layers=3),
    )
})


def model_preset(name: str) -> ModelConfig:
    """The preset ``name`` (ValueError lists the presets)."""
    if not isinstance(name, str):
        raise TypeError(f"model: expected a preset name (str), got {type(name).__name__}")
    try:
        return MODEL_PRESETS[name]
    except KeyError:
        raise ValueError(f"model: unknown preset {name!r}; choose one of "
                         f"{', '.join(MODEL_PRESETS)} or give --layers/--hidden/--heads/"
                         "--seq/--vocab") from None


def small_shape(tp: int, heads: int | None = None, hidden: int | None = None
                ) -> tuple[int, int]:
    """(heads, hidden) of the small model ``ringpipe verify`` runs, for tensor-parallel
    degree ``tp``: the given values, else 4 heads (the next multiple of tp when tp does
    not divide 4) and width 32 (8 per head when the heads do not divide 32), so that
    every tp splits the default model (``--tp 8``: 8 heads of width 4)."""
    if heads is None:
        heads = tp * -(-4 // tp) if isinstance(tp, int) and tp > 0 else 4
    if hidden is None:
        hidden = 32 if heads > 0 and 32 % heads == 0 else 8 * max(heads, 1)
    return heads, hidden
