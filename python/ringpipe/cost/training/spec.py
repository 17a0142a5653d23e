"""What is trained: the transformer's shape, how it is trained, and their maths.

:class:`ModelSpec` is the architecture (layers l, hidden h, heads a, KV heads, FFN
width f, sequence s, vocabulary V); :class:`TrainingSpec` is how it is trained (global
batch B, micro-batch size b, 16-bit dtype, activation recomputation). Both are frozen
and validated; ``None`` in a training field means "let the planner choose".

FLOPs (Narayanan et al., SC'21, arXiv 2104.04473, appendix): a matmul with P weights on
b·s tokens costs 2·b·s·P FLOPs, so one layer's forward is

    2·b·s·P_mm + 4·b·s²·h     (P_mm = 12h² for GPT: 24·b·s·h² + 4·b·s²·h)

where the second term is QKᵀ and attention × V; the logit layer costs 2·b·s·h·V. The
backward costs 2× the forward (input and weight gradients); full recomputation adds
one more forward of each layer, selective recomputation only its attention core.

Activation and state memory live in :mod:`ringpipe.cost.training.memory`; the training recipe
(sequence parallelism, flash attention, distributed optimizer, ...) in
:mod:`ringpipe.cost.training.recipe`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from ringpipe.cost.training.recipe import MEGATRON, Recipe
from ringpipe.validation import check_int

RECOMPUTE = ("none", "selective", "full")
DTYPES = MappingProxyType({"bf16": 2, "fp16": 2})


def _check_int(owner: str, name: str, value: object, minimum: int = 1) -> None:
    check_int(f"{owner}.{name}", value, minimum)


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer. ``ffn`` defaults to 4·hidden, ``kv_heads`` to heads.

    ``gated_mlp``: SwiGLU (three h×f matrices) instead of GeLU (two); ``tied_embeddings``:
    the output layer shares the embedding matrix; ``learned_positions``: a learned s×h
    position table (GPT) rather than rotary; ``dropout``: dropout masks are stored.
    """

    name: str
    layers: int
    hidden: int
    heads: int
    seq: int
    vocab: int
    ffn: int = 0
    kv_heads: int = 0
    gated_mlp: bool = False
    tied_embeddings: bool = True
    learned_positions: bool = False
    dropout: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError("ModelSpec.name must be a non-empty str")
        for name in ("layers", "hidden", "heads", "seq", "vocab"):
            _check_int("ModelSpec", name, getattr(self, name))
        for name in ("ffn", "kv_heads"):
            _check_int("ModelSpec", name, getattr(self, name), minimum=0)
        if self.ffn == 0:
            object.__setattr__(self, "ffn", 4 * self.hidden)
        if self.kv_heads == 0:
            object.__setattr__(self, "kv_heads", self.heads)
        if self.hidden % self.heads:
            raise ValueError(f"ModelSpec.heads ({self.heads}) must divide "
                             f"ModelSpec.hidden ({self.hidden})")
        if self.heads % self.kv_heads:
            raise ValueError(f"ModelSpec.kv_heads ({self.kv_heads}) must divide "
                             f"ModelSpec.heads ({self.heads})")

    @property
    def kv_ratio(self) -> float:
        """kv_heads / heads: the size of K (and of V) relative to Q."""
        return self.kv_heads / self.heads

    @property
    def matmul_params_per_layer(self) -> int:
        """Weights of one layer's matmuls: Q, K, V, output projection and the MLP."""
        h = self.hidden
        attention = 2 * h * h + 2 * h * (h * self.kv_heads // self.heads)
        return attention + (3 if self.gated_mlp else 2) * h * self.ffn

    @property
    def params_per_layer(self) -> int:
        """All of one layer's parameters: matmuls plus biases and norms (GPT-style models
        with dropout also carry biases; Llama-style ones only RMSNorm weights)."""
        h = self.hidden
        if self.gated_mlp:
            return self.matmul_params_per_layer + 2 * h
        qkv = h + 2 * h * self.kv_heads // self.heads
        return self.matmul_params_per_layer + qkv + h + self.ffn + h + 4 * h

    @property
    def embedding_params(self) -> int:
        """Token embedding (plus learned positions); the output layer if untied is the
        same size again (:attr:`output_params`)."""
        return self.vocab * self.hidden + (self.seq * self.hidden if self.learned_positions
                                           else 0)

    @property
    def output_params(self) -> int:
        """The output layer's weights (V·h; shared with the embedding when tied)."""
        return self.vocab * self.hidden

    @property
    def total_params(self) -> int:
        """Parameter count of the whole model (final norm included)."""
        head = 0 if self.tied_embeddings else self.output_params
        return (self.layers * self.params_per_layer + self.embedding_params + head
                + 2 * self.hidden)

    def layer_matmul_flops(self, batch: int) -> float:
        """Forward FLOPs of one layer's weight matmuls on ``batch`` sequences: 2·b·s·P_mm."""
        return 2.0 * batch * self.seq * self.matmul_params_per_layer

    def layer_attention_flops(self, batch: int) -> float:
        """Forward FLOPs of QKᵀ and attention × V: 4·b·s²·h."""
        return 4.0 * batch * self.seq**2 * self.hidden

    def logits_flops(self, batch: int) -> float:
        """Forward FLOPs of the logit layer: 2·b·s·h·V."""
        return 2.0 * batch * self.seq * self.hidden * self.vocab


@dataclass(frozen=True)
class TrainingSpec:
    """How the model is trained. ``microbatch_size`` / ``recompute`` ``None``: search.

    ``recipe``: sequence parallelism, flash attention, distributed optimizer, overlap
    (:class:`ringpipe.cost.training.recipe.Recipe`; default: today's Megatron-LM recipe).
    """

    global_batch: int
    microbatch_size: int | None = None
    dtype: str = "bf16"
    recompute: str | None = None
    recipe: Recipe = MEGATRON

    def __post_init__(self) -> None:
        _check_int("TrainingSpec", "global_batch", self.global_batch)
        if self.microbatch_size is not None:
            _check_int("TrainingSpec", "microbatch_size", self.microbatch_size)
            if self.global_batch % self.microbatch_size:
                raise ValueError(f"TrainingSpec.microbatch_size ({self.microbatch_size}) "
                                 f"must divide global_batch ({self.global_batch})")
        if self.dtype not in DTYPES:
            raise ValueError(f"TrainingSpec.dtype must be one of {tuple(DTYPES)}, "
                             f"got {self.dtype!r}")
        if self.recompute is not None and self.recompute not in RECOMPUTE:
            raise ValueError(f"TrainingSpec.recompute must be one of {RECOMPUTE}, "
                             f"got {self.recompute!r}")
        if not isinstance(self.recipe, Recipe):
            raise TypeError(f"TrainingSpec.recipe must be a Recipe, got "
                            f"{type(self.recipe).__name__}")

    @property
    def dtype_bytes(self) -> int:
        """Bytes per 16-bit element (activations, gradients, messages)."""
        return DTYPES[self.dtype]


def executed_flops(model: ModelSpec, sequences: int, recompute: str) -> float:
    """FLOPs one step executes on ``sequences`` sequences, recomputation included.

    With full recompute and a GPT shape this is Megatron's 96·B·s·l·h²·(1 + s/(6h) +
    V/(16·l·h)) (SC'21, eq. 3): 4 passes over every layer and 3 over the logit layer.
    """
    layer = model.layer_matmul_flops(1) + model.layer_attention_flops(1)
    passes = 4.0 if recompute == "full" else 3.0
    extra = model.layer_attention_flops(1) if recompute == "selective" else 0.0
    return sequences * (model.layers * (passes * layer + extra) + 3 * model.logits_flops(1))


def _gpt(name: str, layers: int, hidden: int, heads: int) -> ModelSpec:
    return ModelSpec(name, layers, hidden, heads, seq=2048, vocab=50257,
                     learned_positions=True)


def _llama(name: str, layers: int, hidden: int, heads: int, kv: int, ffn: int,
           seq: int, vocab: int) -> ModelSpec:
    return ModelSpec(name, layers, hidden, heads, seq=seq, vocab=vocab, ffn=ffn,
                     kv_heads=kv, gated_mlp=True, tied_embeddings=False, dropout=False)


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


def model_preset(name: str) -> ModelSpec:
    """The preset ``name`` (ValueError lists the presets)."""
    if not isinstance(name, str):
        raise TypeError(f"model: expected a preset name (str), got {type(name).__name__}")
    try:
        return MODEL_PRESETS[name]
    except KeyError:
        raise ValueError(f"model: unknown preset {name!r}; choose one of "
                         f"{', '.join(MODEL_PRESETS)} or give --layers/--hidden/--heads/"
                         "--seq/--vocab") from None
