"""Other tools' spellings of ringpipe's flags, accepted as aliases.

* Megatron-LM's argument names (``megatron/training/arguments.py`` of core_v0.15.0, the
  file ``ringpipe plan --emit megatron`` cites, :mod:`ringpipe.cli.emit`) for the plan
  and verify flags: :data:`PLAN_ALIASES`, :data:`VERIFY_ALIASES`. Megatron's
  ``--micro-batch-size`` is the sequences per micro-batch: ``ringpipe plan`` takes it as
  ``--microbatch-size``; ``ringpipe verify`` (which counts micro-batches) turns it into
  a count with :func:`resolve_micro_batch_size`.
* PyTorch's schedule class names wherever a schedule name is taken
  (:func:`schedule_name`, through the one table
  :data:`ringpipe.schedules.registry.PYTORCH_SCHEDULE_CLASSES`).
* nccl-tests' short options in ``python -m ringpipe.mpi allreduce`` are declared there
  (:mod:`ringpipe.cli.ranks.allreduce`).

An alias is the same argparse action under another option string, so ``--help`` lists
it beside ringpipe's name and the value lands in the same place.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from ringpipe.schedules.registry import canonical_schedule

__all__ = ["PLAN_ALIASES", "VERIFY_ALIASES", "add_aliases", "resolve_micro_batch_size",
           "schedule_name"]

#: Megatron-LM spellings shared by ``plan`` and ``verify``.
_MODEL = {"--tp": ("--tensor-model-parallel-size",),
          "--pp": ("--pipeline-model-parallel-size",),
          "--layers": ("--num-layers",), "--hidden": ("--hidden-size",),
          "--heads": ("--num-attention-heads",), "--seq": ("--seq-length",),
          "--vocab": ("--vocab-size",), "--kv-heads": ("--num-query-groups",),
          "--stages-per-rank": ("--num-virtual-stages-per-pipeline-rank",)}

#: ringpipe ``plan`` flag -> Megatron-LM's names for it.
PLAN_ALIASES: Mapping[str, tuple[str, ...]] = {
    **_MODEL, "--ffn": ("--ffn-hidden-size",), "--global-batch": ("--global-batch-size",),
    "--microbatch-size": ("--micro-batch-size",),
    "--recompute": ("--recompute-granularity",)}

#: ringpipe ``verify`` flag -> Megatron-LM's names for it (``--micro-batch-size`` is a
#: flag of its own there, see the module docstring).
VERIFY_ALIASES: Mapping[str, tuple[str, ...]] = {**_MODEL,
                                                 "--batch": ("--global-batch-size",)}


def add_aliases(parser: argparse.ArgumentParser,
                aliases: Mapping[str, tuple[str, ...]]) -> None:
    """Register each alias as another option string of the flag it names (flags the
    parser lacks are skipped: ``verify --inference``'s are added later)."""
    for flag, names in aliases.items():
        action = parser._option_string_actions.get(flag)
        if action is None:
            continue
        for name in names:
            if name in parser._option_string_actions:
                raise ValueError(f"alias {name} of {flag} is already a flag")
            action.option_strings.append(name)
            parser._option_string_actions[name] = action


def schedule_name(text: str) -> str:
    """argparse ``type`` for schedule names: PyTorch's class names (``Schedule1F1B``)
    and torchtitan's short names become ringpipe's; anything else passes through to the
    choice check (which suggests the closest name)."""
    return canonical_schedule(text)


def resolve_micro_batch_size(args: argparse.Namespace) -> None:
    """``verify --micro-batch-size B`` (Megatron's sequences per micro-batch) as
    ringpipe's micro-batch count: m = batch / (dp · B), with the batch (``--batch``,
    ``--global-batch-size``) defaulting to dp · m · B; ValueError when they disagree."""
    size = getattr(args, "micro_batch_size", None)
    if size is None:
        return
    if size < 1:
        raise ValueError(f"--micro-batch-size must be >= 1, got {size}")
    if args.batch is None:
        m = args.microbatches if args.microbatches is not None else args.pp
        args.microbatches, args.batch = m, args.dp * m * size
        return
    m, rest = divmod(args.batch, args.dp * size)
    if rest or m < 1:
        raise ValueError(f"--batch {args.batch} is not a multiple of dp × --micro-batch-size "
                         f"= {args.dp} × {size}")
    if args.microbatches is not None and args.microbatches != m:
        raise ValueError(f"--microbatches {args.microbatches} contradicts --batch "
                         f"{args.batch} / (dp {args.dp} × --micro-batch-size {size}) = {m}")
    args.microbatches = m
