"""The schedule IR: actions, per-rank action lists, and their text form.

An :class:`Action` names a stage (a global model-chunk index ``0 .. p*v-1``), a
:class:`ActionKind` and a micro-batch. Its text form is the one used by PyTorch's
``torch.distributed.pipelining``: ``{stage}{kind}{microbatch}``, e.g. ``"0F1"``,
``"3B0"``, ``"2I4"``, ``"2W4"``, ``"1SEND_F2"``, ``"1RECV_B0"``.

Communication actions carry the *local* stage: ``1SEND_F2`` runs on the rank that
holds stage 1 and sends stage 1's output for micro-batch 2 to stage 2;
``2RECV_F2`` runs on the rank holding stage 2 and receives that tensor. Likewise
``{s}SEND_B{mb}`` sends stage s's input gradient to stage s-1 and
``{s}RECV_B{mb}`` receives stage s+1's.

A :class:`Schedule` is, for each pipeline rank, an ordered tuple of actions, where
``None`` marks an idle slot (kept so that schedules loaded from CSV round-trip
losslessly). ``placement[s]`` is the rank that holds stage s; common placements:

* one chunk per rank: stage s on rank s;
* interleaved (Megatron virtual pipeline): stage s on rank ``s % p``;
* V-shape (ZB-V, DualPipeV): rank r holds stages r and ``2p-1-r``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

from ringpipe.validation import check_int


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

    def __str__(self) -> str:
        return self.value

    @property
    def is_compute(self) -> bool:
        """True for F, B, I and W; False for the communication kinds."""
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
    }
)
COMM_KINDS = frozenset({ActionKind.SEND_F, ActionKind.RECV_F, ActionKind.SEND_B, ActionKind.RECV_B})

_KIND_BY_TEXT = {kind.value: kind for kind in ActionKind}
#: ActionKind -> its integer code in array encodings (F=0, B=1, I=2, W=3, SEND_F=4, ...).
KIND_CODES = MappingProxyType({kind: code for code, kind in enumerate(ActionKind)})
_KINDS = tuple(ActionKind)  # code -> ActionKind
_ACTION_RE = re.compile(r"([0-9]+)(SEND_F|RECV_F|SEND_B|RECV_B|F|B|I|W)([0-9]+)")


class Action(NamedTuple):
    """One step of one rank: ``stage`` (global chunk index), ``kind``, ``microbatch``."""

    stage: int
    kind: ActionKind
    microbatch: int

    def __str__(self) -> str:
        return f"{self.stage}{self.kind.value}{self.microbatch}"

    def __repr__(self) -> str:
        return f"Action.parse({str(self)!r})"

    @classmethod
    def parse(cls, text: str) -> Action:
        """Parse the text form, e.g. ``"0F1"`` or ``"3SEND_F1"`` (surrounding blanks ignored)."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        match = _ACTION_RE.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"text: {text!r} is not an action; expected {{stage}}{{kind}}{{microbatch}} "
                f"with kind one of {', '.join(_KIND_BY_TEXT)} (e.g. '0F1', '3SEND_F1')"
            )
        stage, kind, microbatch = match.groups()
        return cls(int(stage), _KIND_BY_TEXT[kind], int(microbatch))


F = ActionKind.FORWARD
B = ActionKind.FULL_BACKWARD
I = ActionKind.BACKWARD_INPUT  # noqa: E741 - the paper's name for the input-gradient pass
W = ActionKind.BACKWARD_WEIGHT


@dataclass(frozen=True)
class Schedule:
    """Per-rank action lists of one training step, plus the stage -> rank placement.

    ``actions[r]`` is rank r's program in execution order (``None`` = idle slot).
    ``placement[s]`` is the rank holding stage s; every rank holds the same number
    ``chunks_per_rank`` (v) of stages, so there are ``p * v`` stages.
    Structural checks here are O(p*v); the O(actions) checks live in
    :mod:`ringpipe.schedules.validate`.

    The generators and :func:`~ringpipe.schedules.comms.add_communication` build
    schedules from arrays (:meth:`from_arrays`): validate and simulate read those
    arrays, and ``actions`` is materialized on first access, equal to what this
    constructor would hold (so equality, hashing and pickling are unchanged).
    """

    name: str
    placement: tuple[int, ...]
    actions: tuple[tuple[Action | None, ...], ...]
    num_microbatches: int

    def __post_init__(self) -> None:
        self._check(len(self.actions))
        self._check_actions()

    def _check_actions(self) -> None:
        """Types of a hand-built schedule's actions (O(actions), eager constructor only:
        the generators' array-backed schedules are correct by construction)."""
        for r, row in enumerate(self.actions):
            if isinstance(row, (str, bytes)) or not isinstance(row, Sequence):
                raise TypeError(f"actions[{r}]: expected a sequence of Action or None, got "
                                f"{type(row).__name__}")
            for i, a in enumerate(row):
                if a is None:
                    continue
                where = f"actions[{r}][{i}]"
                if not isinstance(a, Action):
                    raise TypeError(f"{where}: expected Action or None, got {a!r} "
                                    f"({type(a).__name__}); e.g. Action.parse('0F0')")
                if not isinstance(a.kind, ActionKind):
                    raise TypeError(f"{where}: kind must be an ActionKind (e.g. F or "
                                    f"ActionKind.FORWARD), got {a.kind!r}")
                for field in ("stage", "microbatch"):
                    check_int(f"{where}: {field}", getattr(a, field), 0)

    def _check(self, p: int) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name: expected str, got {type(self.name).__name__}")
        check_int("num_microbatches", self.num_microbatches)
        check_int("actions (number of ranks)", p)
        if isinstance(self.placement, (str, bytes)) or not isinstance(self.placement,
                                                                       Sequence):
            raise TypeError(f"placement: expected a tuple of ranks, one per stage, got "
                            f"{type(self.placement).__name__}")
        if len(self.placement) == 0:
            raise ValueError("placement: must name the rank of at least one stage")
        held = [0] * p
        for stage, rank in enumerate(self.placement):
            if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < p:
                raise ValueError(f"placement: stage {stage} is on rank {rank!r}, not in 0..{p - 1}")
            held[rank] += 1
        if len(set(held)) != 1:
            raise ValueError(
                f"placement: every rank must hold the same number of stages, got {held}"
            )

    @classmethod
    def from_arrays(
        cls,
        name: str,
        placement: tuple[int, ...],
        encoded: object,
        num_microbatches: int,
    ) -> Schedule:
        """A schedule whose actions are held as arrays (:mod:`.encoded`), not objects.

        ``encoded`` is an :class:`~ringpipe.schedules.encoded.EncodedSchedule` of
        ``placement``'s ranks. The array passes (validate, simulate, the communication
        pass) read it directly; :attr:`actions` is built from it, once, only when
        something asks for it, and equals what the eager constructor would hold. The
        same O(p*v) checks as the constructor run here.
        """
        schedule = object.__new__(cls)
        for key, value in (("name", name), ("placement", tuple(placement)),
                           ("num_microbatches", num_microbatches), ("_encoded", encoded)):
            object.__setattr__(schedule, key, value)
        schedule._check(len(encoded.row_start) - 1)  # type: ignore[attr-defined]
        return schedule

    def __getattr__(self, key: str) -> object:
        # Only reached for an array-backed schedule whose actions were never built.
        encoded = self.__dict__.get("_encoded")
        if key != "actions" or encoded is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")
        rows = encoded.to_actions()
        object.__setattr__(self, "actions", rows)
        return rows

    @property
    def num_ranks(self) -> int:
        """p: the number of pipeline ranks."""
        encoded = self.__dict__.get("_encoded")
        return len(encoded.row_start) - 1 if encoded is not None else len(self.actions)

    @property
    def num_stages(self) -> int:
        """p * v: the number of model chunks."""
        return len(self.placement)

    @property
    def chunks_per_rank(self) -> int:
        """v: stages held by each rank."""
        return len(self.placement) // self.num_ranks

    def stages_of(self, rank: int) -> tuple[int, ...]:
        """The stages placed on ``rank``, in increasing order."""
        return tuple(s for s, r in enumerate(self.placement) if r == rank)

    @property
    def kinds(self) -> frozenset[ActionKind]:
        """Every action kind the schedule uses."""
        encoded = self.__dict__.get("_encoded")
        if encoded is not None:
            return frozenset(_KINDS[code] for code in encoded.kind_codes_used())
        return frozenset(a.kind for row in self.actions for a in row if a is not None)

    @property
    def uses_split_backward(self) -> bool:
        """True when backward is split into I and W (zero-bubble schedules)."""
        kinds = self.kinds
        return ActionKind.BACKWARD_INPUT in kinds or ActionKind.BACKWARD_WEIGHT in kinds

    @property
    def has_comms(self) -> bool:
        """True once SEND/RECV actions have been added."""
        return not self.kinds.isdisjoint(COMM_KINDS)

    def compute_actions(self) -> tuple[tuple[Action, ...], ...]:
        """Per rank, the F/B/I/W actions in execution order (no idle slots, no comms)."""
        return tuple(
            tuple(a for a in row if a is not None and a.kind in COMPUTE_KINDS)
            for row in self.actions
        )

    def without_comms(self) -> Schedule:
        """The same schedule with SEND/RECV actions and idle slots removed."""
        return Schedule(self.name, self.placement, self.compute_actions(), self.num_microbatches)


def one_chunk_placement(num_ranks: int) -> tuple[int, ...]:
    """Stage s on rank s (GPipe, 1F1B, ZB-H1)."""
    return tuple(range(num_ranks))


def interleaved_placement(num_ranks: int, chunks_per_rank: int) -> tuple[int, ...]:
    """Megatron's virtual pipeline: stage s on rank ``s % p``."""
    return tuple(s % num_ranks for s in range(num_ranks * chunks_per_rank))


def v_shape_placement(num_ranks: int) -> tuple[int, ...]:
    """V-shape: rank r holds stages r and ``2p-1-r`` (ZB-V, DualPipeV)."""
    return tuple(s if s < num_ranks else 2 * num_ranks - 1 - s for s in range(2 * num_ranks))


def infer_placement(rows: Sequence[Iterable[Action | None]]) -> tuple[int, ...]:
    """The stage -> rank map implied by where each stage's actions run.

    Raises ValueError when a stage runs on two ranks or stage indices have gaps.
    """
    where: dict[int, int] = {}
    for rank, row in enumerate(rows):
        for action in row:
            if action is None:
                continue
            seen = where.setdefault(action.stage, rank)
            if seen != rank:
                raise ValueError(
                    f"actions: stage {action.stage} runs on ranks {seen} and {rank}; "
                    "a stage must live on exactly one rank"
                )
    if not where:
        raise ValueError("actions: the schedule has no actions")
    missing = sorted(set(range(max(where) + 1)) - set(where))
    if missing:
        raise ValueError(f"actions: stages {missing} never appear; stage indices must be 0..S-1")
    return tuple(where[s] for s in range(len(where)))
