"""The schedule IR: actions, per-rank action lists, and their text form.

An :class:`Action` names a stage (a global model-chunk index ``0 .. p*v-1``), a
:class:`ActionKind` and a micro-batch. Its text form is the one used by PyTorch's
``torch.distributed.pipelining``: ``{stage}{kind}{microbatch}``, e.g. ``"0F1"``,
``"3B0"``, ``"2I4"``, ``"2W4"``, ``"1SEND_F2"``, ``"1RECV_B0"``.

An **overlapped pair** (:data:`ActionKind.OVERLAP_F_B`, DualPipe's unit of work:
DeepSeek-AI, DeepSeek-V3 technical report, 2024, §3.2.1) is one action holding a forward
of one stage and a full backward (or input gradient) of another, written as PyTorch
writes it: ``"(0F7;7B3)OVERLAP_F_B"``. It needs both inputs before it starts and hands
both outputs on when it ends; the two halves run back to back (what DualPipe overlaps is
one half's communication with the other's compute, Figure 4 of the report, which a
pipeline of compute actions does not model), so it costs F + B. The runtimes execute
its :attr:`Action.parts` in order; the array passes see the two halves as consecutive
slots marked as a pair (:mod:`.encoded`).

Communication actions carry the *local* stage: ``1SEND_F2`` runs on the rank that
holds stage 1 and sends stage 1's output for micro-batch 2 to stage 2;
``2RECV_F2`` runs on the rank holding stage 2 and receives that tensor. Likewise
``{s}SEND_B{mb}`` sends stage s's input gradient to stage s-1 and
``{s}RECV_B{mb}`` receives stage s+1's.

A :class:`~ringpipe.schedules.schedule.Schedule` is, for each pipeline rank, an ordered
tuple of these actions; :mod:`.placement` says which rank holds each stage.
"""

from __future__ import annotations

import enum
import re
from types import MappingProxyType
from typing import NamedTuple

from ringpipe.schedules.placement import (
    infer_placement,
    interleaved_placement,
    one_chunk_placement,
    v_shape_placement,
)

__all__ = ["COMM_KINDS", "COMPUTE_KINDS", "KIND_CODES", "Action", "ActionKind",
           "infer_placement", "interleaved_placement", "one_chunk_placement", "overlap_f_b",
           "v_shape_placement"]


class ActionKind(str, enum.Enum):
    """What an action does; the value is its text in the action's string form.

    A ``str`` enum, so ``ActionKind.FORWARD == "F"`` and hashing is cheap.
    """

    FORWARD = "F"
    FULL_BACKWARD = "B"
    BACKWARD_INPUT = "I"
    BACKWARD_WEIGHT = "W"
    SEND_F = "SEND_F"
    RECV_F = "RECV_F"
    SEND_B = "SEND_B"
    RECV_B = "RECV_B"
    OVERLAP_F_B = "OVERLAP_F_B"

    def __str__(self) -> str:
        return self.value

    @property
    def is_compute(self) -> bool:
        """True for F, B, I, W and an overlapped pair; False for the communication kinds."""
        return self in COMPUTE_KINDS

    @property
    def code(self) -> int:
        """A small integer for array encodings: the member's position in the enum."""
        return KIND_CODES[self]


COMPUTE_KINDS = frozenset(
    {
        ActionKind.FORWARD,
        ActionKind.FULL_BACKWARD,
        ActionKind.BACKWARD_INPUT,
        ActionKind.BACKWARD_WEIGHT,
        ActionKind.OVERLAP_F_B,
    }
)
COMM_KINDS = frozenset({ActionKind.SEND_F, ActionKind.RECV_F, ActionKind.SEND_B, ActionKind.RECV_B})

_KIND_BY_TEXT = {kind.value: kind for kind in ActionKind}
#: ActionKind -> its integer code in array encodings (F=0, B=1, I=2, W=3, SEND_F=4, ...).
KIND_CODES = MappingProxyType({kind: code for code, kind in enumerate(ActionKind)})
_KINDS = tuple(ActionKind)  # code -> ActionKind
_ACTION_RE = re.compile(r"([0-9]+)(SEND_F|RECV_F|SEND_B|RECV_B|F|B|I|W)([0-9]+)")
_PAIR_RE = re.compile(r"\(\s*([^;()]+?)\s*;\s*([^;()]+?)\s*\)OVERLAP_F_B")


class Action(NamedTuple):
    """One step of one rank: ``stage`` (global chunk index), ``kind``, ``microbatch``.

    An overlapped pair (:func:`overlap_f_b`) has kind ``OVERLAP_F_B``, stage and
    micro-batch -1 (as PyTorch's container action) and its forward and backward in
    ``sub_actions``.
    """

    stage: int
    kind: ActionKind
    microbatch: int
    sub_actions: tuple[Action, ...] | None = None

    def __str__(self) -> str:
        if self.sub_actions is not None:
            return f"({';'.join(map(str, self.sub_actions))}){self.kind.value}"
        return f"{self.stage}{self.kind.value}{self.microbatch}"

    def __repr__(self) -> str:
        return f"Action.parse({str(self)!r})"

    @property
    def parts(self) -> tuple[Action, ...]:
        """The elementary actions this one runs, in order: its two halves for an
        overlapped pair, else itself."""
        return (self,) if self.sub_actions is None else self.sub_actions

    @classmethod
    def parse(cls, text: str) -> Action:
        """Parse the text form, e.g. ``"0F1"``, ``"3SEND_F1"`` or
        ``"(0F7;7B3)OVERLAP_F_B"`` (surrounding blanks ignored)."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        pair = _PAIR_RE.fullmatch(text.strip())
        if pair is not None:
            return overlap_f_b(cls.parse(pair.group(1)), cls.parse(pair.group(2)))
        match = _ACTION_RE.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"text: {text!r} is not an action; expected {{stage}}{{kind}}{{microbatch}} "
                f"with kind one of {', '.join(k for k in _KIND_BY_TEXT if k != 'OVERLAP_F_B')}"
                " (e.g. '0F1', '3SEND_F1'), or an overlapped pair '(0F7;7B3)OVERLAP_F_B'"
            )
        stage, kind, microbatch = match.groups()
        return cls(int(stage), _KIND_BY_TEXT[kind], int(microbatch))


def overlap_f_b(forward: Action, backward: Action) -> Action:
    """The overlapped pair of ``forward`` (an F) and ``backward`` (a B or an I) of two
    different stages (module docstring); ValueError otherwise."""
    if not (isinstance(forward, Action) and isinstance(backward, Action)):
        raise TypeError("overlap_f_b: expected two Actions (a forward, then a backward)")
    if forward.kind is not ActionKind.FORWARD or backward.kind not in (
            ActionKind.FULL_BACKWARD, ActionKind.BACKWARD_INPUT):
        raise ValueError(f"overlap_f_b: an overlapped pair is a forward then a full or "
                         f"input-gradient backward, got ({forward};{backward})")
    if forward.stage == backward.stage:
        raise ValueError(f"overlap_f_b: ({forward};{backward}) pairs a stage with itself; "
                         "the halves of a pair belong to two different stages")
    return Action(-1, ActionKind.OVERLAP_F_B, -1, (forward, backward))


F = ActionKind.FORWARD
B = ActionKind.FULL_BACKWARD
I = ActionKind.BACKWARD_INPUT  # noqa: E741 - the paper's name for the input-gradient pass
W = ActionKind.BACKWARD_WEIGHT
