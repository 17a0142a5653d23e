"""How a model is trained (:class:`TrainingSpec`), and the FLOPs one step executes.

The model itself is :class:`ringpipe.model.ModelConfig` (layers l, hidden h, heads a,
KV heads, FFN width f, sequence s, vocabulary V and the architecture's details), the
same description the NumPy model is built from; :class:`TrainingSpec` is how it is
trained (global batch B, micro-batch size b, 16-bit dtype, activation recomputation),
frozen and validated; ``None`` in a training field means "let the planner choose".

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
from ringpipe.model.config import ModelConfig
from ringpipe.validation import check_int, check_real

RECOMPUTE = ("none", "selective", "full")
#: Training dtypes and the bytes of an activation, gradient or message element: FP8
#: keeps those 16-bit (only GEMM operands and the saved GEMM inputs are FP8:
#: :mod:`ringpipe.cost.training.parallel.fp8`).
DTYPES = MappingProxyType({"bf16": 2, "fp16": 2, "fp8": 2})


def _check_int(owner: str, name: str, value: object, minimum: int = 1) -> None:
    check_int(f"{owner}.{name}", value, minimum)


@dataclass(frozen=True)
class TrainingSpec:
    """How the model is trained. ``microbatch_size`` / ``recompute`` ``None``: search.

    ``recipe``: sequence parallelism, flash attention, distributed optimizer, overlap
    (:class:`ringpipe.cost.training.recipe.Recipe`; default: today's Megatron-LM recipe).
    ``dtype`` "fp8": Transformer Engine's FP8 recipe with bf16 master weights
    (:mod:`ringpipe.cost.training.parallel.fp8`). ``moe_imbalance`` (λ ≥ 1): for MoE models, the
    rows the most loaded expert-parallel rank receives over the mean (1: a perfectly
    balanced router; :mod:`ringpipe.cost.training.parallel.experts`).
    """

    global_batch: int
    microbatch_size: int | None = None
    dtype: str = "bf16"
    recompute: str | None = None
    recipe: Recipe = MEGATRON
    moe_imbalance: float = 1.0

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
        if check_real("TrainingSpec.moe_imbalance", self.moe_imbalance) < 1:
            raise ValueError(f"TrainingSpec.moe_imbalance must be >= 1 (the busiest rank over "
                             f"the mean), got {self.moe_imbalance}")

    @property
    def fp8(self) -> bool:
        """Whether the linear layers run Transformer Engine's FP8 recipe."""
        return self.dtype == "fp8"

    @property
    def dtype_bytes(self) -> int:
        """Bytes per 16-bit element (activations, gradients, messages)."""
        return DTYPES[self.dtype]


def executed_flops(model: ModelConfig, sequences: int, recompute: str) -> float:
    """FLOPs one step executes on ``sequences`` sequences, recomputation included.

    With full recompute and a GPT shape this is Megatron's 96·B·s·l·h²·(1 + s/(6h) +
    V/(16·l·h)) (SC'21, eq. 3): 4 passes over every layer and 3 over the logit layer.
    """
    layer = model.layer_matmul_flops(1) + model.layer_attention_flops(1)
    passes = 4.0 if recompute == "full" else 3.0
    extra = model.layer_attention_flops(1) if recompute == "selective" else 0.0
    return sequences * (model.layers * (passes * layer + extra) + 3 * model.logits_flops(1))
