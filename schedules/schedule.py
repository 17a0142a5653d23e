"""A schedule: per pipeline rank, an ordered tuple of actions, and the stage -> rank
placement.

``None`` in a rank's tuple marks an idle slot (kept so that schedules loaded from CSV
round-trip losslessly). ``placement[s]`` is the rank that holds stage s
(:mod:`.placement`). The actions and their text form are in :mod:`.actions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ringpipe.schedules.actions import (
    _KINDS,
    COMM_KINDS,
    COMPUTE_KINDS,
    Action,
    ActionKind,
    overlap_f_b,
)
from ringpipe.validation import check_int

__all__ = ["Schedule"]


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
                if a.kind is ActionKind.OVERLAP_F_B or a.sub_actions is not None:
                    if (a.kind is not ActionKind.OVERLAP_F_B or a.sub_actions is None
                            or len(a.sub_actions) != 2):
                        raise TypeError(f"{where}: an overlapped pair is built by "
                                        f"overlap_f_b(forward, backward), got {a!r}")
                    overlap_f_b(*a.sub_actions)  # the halves: an F, then a B or an I
                    parts = a.sub_actions
                else:
                    parts = (a,)
                for part in parts:
                    if not isinstance(part.kind, ActionKind):
                        raise TypeError(f"{where}: kind must be an ActionKind (e.g. F or "
                                        f"ActionKind.FORWARD), got {part.kind!r}")
                    for field in ("stage", "microbatch"):
                        check_int(f"{where}: {field}", getattr(part, field), 0)

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
            pairs = {ActionKind.OVERLAP_F_B} if encoded.has_pairs else set()
            return frozenset(_KINDS[code] for code in encoded.kind_codes_used()) | pairs
        return frozenset(p.kind for row in self.actions for a in row if a is not None
                         for p in (a,) + a.parts)

    @property
    def has_overlap(self) -> bool:
        """True when some action is an overlapped F/B pair (DualPipeV)."""
        return ActionKind.OVERLAP_F_B in self.kinds

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
        """Per rank, the F/B/I/W actions and overlapped pairs in execution order (no idle
        slots, no comms)."""
        return tuple(
            tuple(a for a in row if a is not None and a.kind in COMPUTE_KINDS)
            for row in self.actions
        )

    def without_comms(self) -> Schedule:
        """The same schedule with SEND/RECV actions and idle slots removed."""
        return Schedule(self.name, self.placement, self.compute_actions(), self.num_microbatches)
