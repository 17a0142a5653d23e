"""Published model shapes, as :class:`~ringpipe.model.config.ModelConfig` presets.

GPT-3 (Brown et al. 2020, Table 2.1); Llama 2 (Touvron et al. 2023, and the released
configs); Llama 3 / 3.1 (Llama Team 2024, "The Llama 3 Herd of Models", Table 3).
:func:`gpt_like` and :func:`llama_like` build the two families' architecture details
for other shapes. The cost model prices them all; the NumPy model builds the
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


def _gpt(name: str, layers: int, hidden: int, heads: int) -> ModelConfig:
    return gpt_like(name, layers, hidden, heads, seq=2048, vocab=50257,
                    learned_positions=True)


def _llama(name: str, layers: int, hidden: int, heads: int, kv: int, ffn: int,
           seq: int, vocab: int) -> ModelConfig:
    return llama_like(name, layers, hidden, heads, kv, ffn, seq, vocab)


#: Published shapes: GPT-3 (Brown et al. 2020, Table 2.1); Llama 2 (Touvron et al. 2023,
#: and the released configs); Llama 3 / 3.1 (Llama Team 2024, "The Llama 3 Herd of
#: Models", Table 3).
MODEL_PRESETS = MappingProxyType({
    m.name: m for m in (
        _gpt("gpt3-175b", 96, 12288, 96),
        _llama("llama2-7b", 32, 4096, 32, 32, 11008, 4096, 32000),
        _llama("llama2-13b", 40, 5120, 40, 40, 13824, 4096, 32000),
        _llama("llama2-70b", 80, 8192, 64, 8, 28672, 4096, 32000),
        _llama("llama3-8b", 32, 4096, 32, 8, 14336, 8192, 128256),
        _llama("llama3-70b", 80, 8192, 64, 8, 28672, 8192, 128256),
        _llama("llama3-405b", 126, 16384, 128, 8, 53248, 8192, 128256),
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
