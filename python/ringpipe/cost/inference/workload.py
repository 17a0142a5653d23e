"""What is served (:class:`Workload`) and the KV cache it holds (:func:`kv_cache_bytes`).

The KV cache of one sequence holds, per token, the key and the value of every layer
(Pope et al. 2022, "Efficiently Scaling Transformer Inference", section 2):
2 · layers · kv_heads · head_dim · bytes, split over TP (kv_heads/tp, at least one head
per rank: heads are replicated past tp = kv_heads) and over PP (the stage's layers).
"""

from __future__ import annotations

from dataclasses import dataclass

from ringpipe.model.config import ModelConfig
from ringpipe.validation import check_int

__all__ = ["WEIGHT_BYTES", "Workload", "kv_cache_bytes"]

#: Bytes per weight (and KV-cache element) for each serving dtype.
WEIGHT_BYTES = {"bf16": 2, "fp8": 1}


@dataclass(frozen=True)
class Workload:
    """``batch`` concurrent sequences (all replicas together), prompts of ``prompt_len``
    tokens, ``output_len`` generated tokens each, weights in ``dtype``."""

    prompt_len: int
    output_len: int
    batch: int = 1
    dtype: str = "bf16"

    def __post_init__(self) -> None:
        check_int("Workload.prompt_len", self.prompt_len)
        check_int("Workload.output_len", self.output_len)
        check_int("Workload.batch", self.batch)
        if self.dtype not in WEIGHT_BYTES:
            raise ValueError(f"Workload.dtype must be one of {tuple(WEIGHT_BYTES)}, "
                             f"got {self.dtype!r}")



def kv_cache_bytes(model: ModelConfig, tokens: int, sequences: int, tp: int = 1,
                   layers: int | None = None, dtype: str = "bf16") -> float:
    """2 · layers · kv_heads/tp · head_dim · bytes per token per sequence (kv_heads/tp at
    least 1: heads are replicated past tp = kv_heads), times tokens · sequences.

    TypeError/ValueError naming the argument for a non-model, negative ``tokens``,
    ``sequences`` or ``layers`` (negative bytes), ``tp < 1`` or an unknown ``dtype``."""
    if not isinstance(model, ModelConfig):
        raise TypeError(f"kv_cache_bytes: model must be a ModelConfig, got "
                        f"{type(model).__name__}")
    check_int("kv_cache_bytes: tokens", tokens, 0)
    check_int("kv_cache_bytes: sequences", sequences, 0)
    check_int("kv_cache_bytes: tp", tp, 1)
    if dtype not in WEIGHT_BYTES:
        raise ValueError(f"kv_cache_bytes: dtype must be one of {tuple(WEIGHT_BYTES)}, "
                         f"got {dtype!r}")
    layers = model.layers if layers is None else check_int("kv_cache_bytes: layers", layers, 0)
    kv_here = max(model.kv_heads // tp, 1)
    d = model.hidden // model.heads
    return 2.0 * layers * kv_here * d * WEIGHT_BYTES[dtype] * tokens * sequences
