"""The model and training spec ``ringpipe plan``'s arguments describe.

``--model NAME`` takes a preset (:mod:`ringpipe.model.presets`), and size flags given
beside it override its fields (the name then records what changed); without ``--model``
every size flag is needed. ``--gated-mlp`` gives the Llama-style layer (SwiGLU, RMSNorm,
no biases); the MoE flags come from :func:`ringpipe.cli.args.parallel.moe_overrides`.
"""

from __future__ import annotations

import argparse
import dataclasses

from ringpipe.cli.args.parallel import moe_imbalance, moe_overrides
from ringpipe.cost.training.recipe import Recipe
from ringpipe.cost.training.spec import TrainingSpec
from ringpipe.model.config import ModelConfig
from ringpipe.model.presets import gpt_like, model_preset

__all__ = ["SIZE_FLAGS", "build_model", "build_training"]

#: The model-size flags of ``ringpipe plan`` (each ``--name``, ``args.name``).
SIZE_FLAGS = ("layers", "hidden", "heads", "seq", "vocab", "ffn", "kv_heads")


def build_model(args: argparse.Namespace) -> ModelConfig:
    """The model the arguments describe (ValueError when under-specified)."""
    given = {f: getattr(args, f) for f in SIZE_FLAGS if getattr(args, f) is not None}
    for f, v in given.items():
        if v < 1:
            default = {"ffn": " (leave it out for the default, 4 × hidden)",
                       "kv_heads": " (leave it out for the default, heads)"}.get(f, "")
            raise ValueError(f"--{f.replace('_', '-')} must be >= 1, got {v}{default}")
    inference = getattr(args, "inference", False) is True  # --seq: refused up front
    if inference and args.model is None:  # the cost of serving never reads ModelConfig.seq
        given["seq"] = max(args.prompt_len + args.output_len, 1)
    # --gated-mlp: the Llama-style layer (SwiGLU, RMSNorm, no biases)
    llama_style = {"norm": "rmsnorm", "biases": False} if args.gated_mlp else {}
    if args.gated_mlp:
        given["gated_mlp"] = True
    given.update(moe_overrides(args))
    if args.model is not None:
        base = model_preset(args.model)
        if not given:
            return base
        # A modified preset is no longer the preset: say what changed in its name.
        changes = ",".join(f"{f.replace('_', '-')}={v}" for f, v in sorted(given.items())
                           if getattr(base, f) != v)
        name = f"{base.name}+{changes}" if changes else base.name
        return dataclasses.replace(base, name=name, **given, **llama_style)
    needed = [f"--{f}" for f in ("layers", "hidden", "heads", "seq", "vocab")
              if not (inference and f == "seq")]
    missing = [f for f in needed if f[2:] not in given]
    if missing:
        raise ValueError(f"give --model or all of {' '.join(needed)} "
                         f"(missing {' '.join(missing)})")
    name = f"custom-l{given['layers']}-h{given['hidden']}"
    return gpt_like(name, **given, **llama_style)


def build_training(args: argparse.Namespace) -> TrainingSpec:
    """The training spec and recipe the arguments describe."""
    if args.shard_optimizer and args.no_distributed_optimizer:
        raise ValueError("--shard-optimizer and --no-distributed-optimizer contradict")
    recipe = Recipe(sequence_parallel=not args.no_sp,
                    flash_attention=not args.no_flash_attention,
                    distributed_optimizer=not args.no_distributed_optimizer,
                    overlap_grad_reduce=not args.no_overlap_grad_reduce)
    return TrainingSpec(args.global_batch, args.microbatch_size, args.dtype,
                        args.recompute, recipe, moe_imbalance(args))
