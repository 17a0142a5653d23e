"""The mixture-of-experts fields of :class:`~ringpipe.model.config.ModelConfig`: checks.

A MoE model (Shazeer et al. 2017; Fedus et al. 2022, Switch Transformer; Jiang et al.
2024, Mixtral; DeepSeek-AI 2024, DeepSeek-V3) replaces the MLP of its MoE layers by

* a **router**: logits = x · W_r (h × E, no bias), probabilities p = softmax(logits),
  each token's ``top_k`` largest (ties to the lower expert index), combined with their
  probabilities, renormalised over the top k when ``moe_norm_topk`` (Mixtral, Qwen3-MoE,
  DeepSeek-V3), else as they are (Switch);
* ``experts`` **SwiGLU experts** of width ``moe_ffn`` (three matrices, no biases):
  y = (silu(x W_gate) ⊙ x W_up) W_down;
* ``shared_experts`` experts every token goes through (DeepSeek-V3: one), run as one
  SwiGLU MLP of width ``shared_experts · moe_ffn``;
* optionally the **auxiliary load-balancing loss** (``aux_loss_coeff`` = α): per sequence
  of s tokens, L = α · Σ_e f_e · P_e with f_e = E/(k·s) · (tokens routed to e) and
  P_e = (1/s) Σ_t p_{t,e} (Switch Transformer eq. 4 counted per sequence, as
  DeepSeek-V3's sequence-wise balance loss and Megatron-core's ``seq_aux_loss``); the
  training objective adds its mean over the batch's sequences.

Layers ``[0, dense_layers)`` keep a dense MLP (DeepSeek-V3's first three); the rest are
MoE. ``experts == 0`` is a dense model.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ringpipe.validation import check_int

if TYPE_CHECKING:
    from ringpipe.model.config import ModelConfig

__all__ = ["check_moe_fields"]


def check_moe_fields(config: ModelConfig) -> None:
    """Validate (and default) the MoE fields of ``config`` (module docstring)."""
    check_int("ModelConfig.experts", config.experts, 0)
    if config.experts == 1:
        raise ValueError("ModelConfig.experts must be 0 (a dense model) or >= 2, got 1")
    check_int("ModelConfig.top_k", config.top_k, 1)
    check_int("ModelConfig.shared_experts", config.shared_experts, 0)
    check_int("ModelConfig.dense_layers", config.dense_layers, 0)
    if config.moe_ffn is None:
        object.__setattr__(config, "moe_ffn", config.ffn)
    check_int("ModelConfig.moe_ffn", config.moe_ffn, 1)
    if not isinstance(config.moe_norm_topk, bool):
        raise TypeError(f"ModelConfig.moe_norm_topk must be a bool, got "
                        f"{type(config.moe_norm_topk).__name__}")
    coeff = config.aux_loss_coeff
    if isinstance(coeff, bool) or not isinstance(coeff, (int, float)):
        raise TypeError(f"ModelConfig.aux_loss_coeff must be a float, got "
                        f"{type(coeff).__name__}")
    if not (math.isfinite(coeff) and coeff >= 0):
        raise ValueError(f"ModelConfig.aux_loss_coeff must be finite and >= 0, got {coeff}")
    object.__setattr__(config, "aux_loss_coeff", float(coeff))
    if not config.experts:
        return
    if config.top_k > config.experts:
        raise ValueError(f"ModelConfig.top_k={config.top_k} exceeds experts={config.experts}")
    if config.dense_layers >= config.layers:
        raise ValueError(f"ModelConfig.dense_layers={config.dense_layers} leaves no MoE layer "
                         f"of the {config.layers}")
