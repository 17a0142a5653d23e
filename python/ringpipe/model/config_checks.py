"""The field checks of :class:`~ringpipe.model.config.ModelConfig` (``__post_init__``):
types, ranges and the defaults that depend on other fields (``ffn`` = 4h, ``kv_heads``
= heads, ``head_dim`` = hidden / heads, the MoE fields of
:mod:`ringpipe.model.moe.shape`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ringpipe.model.moe.shape import check_moe_fields
from ringpipe.validation import check_int

if TYPE_CHECKING:
    from ringpipe.model.config import ModelConfig

BLOCKS = ("transformer", "mlp")
#: The boolean architecture fields of :class:`ModelConfig`.
ARCHITECTURE_FLAGS = ("biases", "gated_mlp", "tied_embeddings", "learned_positions",
                      "dropout", "moe_norm_topk")
NORMS = ("rmsnorm", "layernorm")
DTYPES = ("float64", "float32")

__all__ = ["ARCHITECTURE_FLAGS", "BLOCKS", "DTYPES", "NORMS", "check_config_fields"]


def _check_int(name: str, value: object, minimum: int) -> None:
    check_int(f"ModelConfig.{name}", value, minimum)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"ModelConfig.{name} must be one of {choices}, got {value!r}")


def _default(config: ModelConfig, name: str, value: object) -> None:
    if getattr(config, name) is None:
        object.__setattr__(config, name, value)


def check_config_fields(config: ModelConfig) -> None:
    """Raise TypeError/ValueError naming the field unless ``config`` is valid; fill in
    the defaults (module docstring)."""
    for name in ("layers", "hidden", "heads", "seq"):
        _check_int(name, getattr(config, name), 1)
    _check_int("vocab", config.vocab, 0)
    _default(config, "ffn", 4 * config.hidden)
    _check_int("ffn", config.ffn, 1)
    _default(config, "kv_heads", config.heads)
    _check_int("kv_heads", config.kv_heads, 1)
    if config.heads % config.kv_heads:  # type: ignore[operator]
        raise ValueError(f"ModelConfig.kv_heads={config.kv_heads} does not divide "
                         f"ModelConfig.heads={config.heads}")
    if config.head_dim is None and config.hidden % config.heads:
        raise ValueError(f"ModelConfig.hidden={config.hidden} is not divisible by "
                         f"ModelConfig.heads={config.heads}")
    _default(config, "head_dim", config.hidden // config.heads)
    _check_int("head_dim", config.head_dim, 1)
    _check_choice("block", config.block, BLOCKS)
    _check_choice("norm", config.norm, NORMS)
    _check_choice("dtype", config.dtype, DTYPES)
    eps = config.eps
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"ModelConfig.eps must be a float, got {type(eps).__name__}")
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"ModelConfig.eps must be finite and > 0, got {eps}")
    # A plain float: np.float64 (a float subclass) would widen float32 activations.
    object.__setattr__(config, "eps", float(eps))
    if not isinstance(config.name, str):
        raise TypeError(f"ModelConfig.name must be a str, got {type(config.name).__name__}")
    for flag in ARCHITECTURE_FLAGS:
        if not isinstance(getattr(config, flag), bool):
            raise TypeError(f"ModelConfig.{flag} must be a bool, got "
                            f"{type(getattr(config, flag)).__name__}")
    check_moe_fields(config)
