"""Flags that belong to one mode of a command, refused in the other: one mechanism.

``ringpipe plan`` and ``ringpipe verify`` each have two modes, training and
``--inference``, that share one parser. A flag of one mode given in the other would be
silently ignored, and the user would get an answer to a question they did not ask; so
every mode-specific flag is declared once, in a table of :class:`ModeFlag` (the
command's: :data:`ringpipe.cli.plan.inference.PLAN_MODE_FLAGS`,
:data:`ringpipe.cli.verify.inference.VERIFY_MODE_FLAGS`), and :func:`check_mode` refuses,
in both directions alike, any flag of the other mode (ValueError, exit 2: ``--prompt-len
does not apply to training (without --inference): ...``).

To tell "given" from "left at its default", a mode-specific flag's parser default is
None (False for a switch, an empty list for a repeated one); :func:`check_mode` then
fills in its default for the mode it belongs to (:attr:`ModeFlag.default`), so the rest
of the command reads ``args.prompt_len`` as before.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["INFERENCE", "TRAINING", "ModeFlag", "check_mode", "given"]

TRAINING = "training"
INFERENCE = "inference"
_NAMES = {TRAINING: "training (without --inference)", INFERENCE: "--inference"}


@dataclass(frozen=True)
class ModeFlag:
    """``flag`` (stored in ``args.<dest>``) means something only in ``mode``; ``why`` it
    means nothing in the other; ``default``: its value in ``mode`` when not given."""

    flag: str
    dest: str
    mode: str
    why: str
    default: object = None

    def __post_init__(self) -> None:
        if self.mode not in _NAMES:
            raise ValueError(f"ModeFlag {self.flag}: mode must be {TRAINING!r} or "
                             f"{INFERENCE!r}, got {self.mode!r}")


def given(value: object) -> bool:
    """Whether a flag's parsed value says it was given (module docstring)."""
    return value is not None and value is not False and value != []


def check_mode(args: argparse.Namespace, flags: Sequence[ModeFlag], mode: str) -> None:
    """Refuse the first flag of ``flags`` given although it belongs to the other mode
    than ``mode`` (ValueError naming it, its mode and why); then give every flag of
    ``mode`` that was not given its default."""
    if mode not in _NAMES:
        raise ValueError(f"mode must be {TRAINING!r} or {INFERENCE!r}, got {mode!r}")
    for f in flags:
        if f.mode != mode and given(getattr(args, f.dest, None)):
            raise ValueError(f"{f.flag} does not apply to {_NAMES[mode]}: {f.why}")
    for f in flags:
        if f.mode == mode and getattr(args, f.dest, None) is None:
            setattr(args, f.dest, f.default)
