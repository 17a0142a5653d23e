"""Array encoding of a schedule, for the O(actions) passes compiled with Numba.

Every rank's list is flattened into three int64 arrays (stage, kind code,
micro-batch; kind -1 marks an idle slot) with ``row_start[r] .. row_start[r+1]``
delimiting rank r. An overlapped F/B pair takes two consecutive slots, its forward
then its backward, and ``pair`` (one flag per slot) is 1 on the first of the two: the
passes that care (the dry run, the simulator, the communication pass) treat the two as
one unit, the others see two ordinary actions. Encoding is one Python pass; the checks
and the simulator then run as Numba loops over the arrays and never touch Action
objects.

Messages travel on **channels**, one per ordered pair (sender rank, receiver
rank) that some message can use. :func:`message_channels` numbers just those
pairs, read off the placement (at most two per pair of adjacent stages, so
O(p*v) of them), so the dry runs keep O(channels) state rather than O(p**2).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import chain

import numpy as np

from ringpipe.schedules.actions import KIND_CODES, Action, ActionKind, overlap_f_b
from ringpipe.schedules.schedule import Schedule

IDLE_CODE = -1


def message_channels(placement: np.ndarray) -> tuple[np.ndarray, int]:
    """Compact ids of the channels messages between adjacent stages use: (channel, count).

    ``channel[2*s]`` is the channel of a message from stage s to stage s+1 (the
    ``SEND_F`` of s, the ``RECV_F`` of s+1): the pair (placement[s], placement[s+1]);
    ``channel[2*s+1]`` that of a message from stage s+1 to stage s (the ``SEND_B``
    of s+1, the ``RECV_B`` of s). Both are -1 when the two stages share a rank (no
    message). Ids ``0 .. count-1`` number the distinct (sender, receiver) pairs in
    lexicographic order, so two messages share an id exactly when they share both
    ranks. O(S log S) for S stages; ``count <= 2*(S-1)``.
    """
    place = np.asarray(placement, dtype=np.int64)
    src = np.stack([place[:-1], place[1:]], axis=1).ravel()
    dst = np.stack([place[1:], place[:-1]], axis=1).ravel()
    remote = src != dst
    width = int(place.max(initial=0)) + 1
    pairs, ids = np.unique(src[remote] * width + dst[remote], return_inverse=True)
    channel = np.full(src.size, -1, dtype=np.int64)
    channel[remote] = ids
    return channel, int(pairs.size)


@dataclass(frozen=True)
class EncodedSchedule:
    """Flat int64 arrays for one schedule (see the module docstring)."""

    stage: np.ndarray
    kind: np.ndarray
    microbatch: np.ndarray
    row_start: np.ndarray
    placement: np.ndarray
    num_microbatches: int
    pair: np.ndarray

    @property
    def has_pairs(self) -> bool:
        """True if some slots hold an overlapped F/B pair."""
        return bool(self.pair.any())

    @property
    def has_comms(self) -> bool:
        """True if any slot is a SEND/RECV (kind code >= SEND_F's); a vectorized
        :attr:`Schedule.has_comms <ringpipe.schedules.actions.Schedule.has_comms>`."""
        return bool((self.kind >= KIND_CODES[ActionKind.SEND_F]).any())

    @cached_property
    def channels(self) -> tuple[np.ndarray, int]:
        """:func:`message_channels` of :attr:`placement` (computed once)."""
        return message_channels(self.placement)

    @property
    def program(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int,
                               bool, np.ndarray]:
        """The leading arguments of the dry-run and simulator kernels: (stage, kind,
        microbatch, row_start, placement, num_microbatches, has_comms, pair)."""
        return (self.stage, self.kind, self.microbatch, self.row_start, self.placement,
                self.num_microbatches, self.has_comms, self.pair)

    def kind_codes_used(self) -> list[int]:
        """The distinct kind codes of the non-idle slots, in increasing order."""
        return [int(k) for k in np.unique(self.kind) if k != IDLE_CODE]

    def to_actions(self) -> tuple[tuple[Action | None, ...], ...]:
        """The per-rank action tuples these arrays encode (``None`` for idle slots)."""
        new = tuple.__new__  # Action(...) without the NamedTuple constructor's overhead
        kinds = tuple(ActionKind)
        flat = [
            None if k < 0 else new(Action, (s, kinds[k], b, None))
            for s, k, b in zip(self.stage.tolist(), self.kind.tolist(),
                               self.microbatch.tolist(), strict=True)
        ]
        bounds = self.row_start.tolist()
        if not self.has_pairs:
            return tuple(tuple(flat[lo:hi]) for lo, hi in zip(bounds, bounds[1:], strict=False))
        heads = set(np.flatnonzero(self.pair).tolist())
        rows = []
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            row, j = [], lo
            while j < hi:
                if j in heads:
                    row.append(overlap_f_b(flat[j], flat[j + 1]))
                    j += 2
                else:
                    row.append(flat[j])
                    j += 1
            rows.append(tuple(row))
        return tuple(rows)

    @cached_property
    def _pairs_before(self) -> np.ndarray:
        """Pair heads among the flat slots before each index (for :meth:`locate`)."""
        return np.concatenate([[0], np.cumsum(self.pair)])

    def locate(self, flat: int) -> tuple[int, int]:
        """(rank, step) of flat index ``flat``: its position in ``schedule.actions[rank]``
        (both halves of an overlapped pair are at the pair's step)."""
        rank = int(np.searchsorted(self.row_start, flat, side="right")) - 1
        start = int(self.row_start[rank])
        step = flat - start
        if self.has_pairs:
            before = self._pairs_before
            step -= int(before[flat] - before[start])  # a second half: its head's step
        return rank, step

    def action_at(self, flat: int) -> Action:
        """The elementary action (F, B, I, W or a message) in slot ``flat``."""
        return Action(int(self.stage[flat]), tuple(ActionKind)[int(self.kind[flat])],
                      int(self.microbatch[flat]))


def encoded_arrays(
    stage: np.ndarray, kind: np.ndarray, microbatch: np.ndarray, row_start: np.ndarray,
    placement: tuple[int, ...], num_microbatches: int, pair: np.ndarray | None = None,
) -> EncodedSchedule:
    """An :class:`EncodedSchedule` of int64 copies of the arrays, frozen read-only
    (``pair`` None: no overlapped pairs)."""
    arrays = [np.array(a, dtype=np.int64) for a in
              (stage, kind, microbatch, row_start, placement)]
    flags = np.zeros(arrays[0].size, np.uint8) if pair is None else np.array(pair, np.uint8)
    for a in (*arrays, flags):
        a.flags.writeable = False
    return EncodedSchedule(*arrays, num_microbatches=num_microbatches, pair=flags)


def encode(schedule: Schedule) -> EncodedSchedule:
    """The :class:`EncodedSchedule` of ``schedule``: flattened in one Python pass the
    first time, then kept with the (immutable) schedule; array-built schedules
    (:meth:`Schedule.from_arrays <ringpipe.schedules.actions.Schedule.from_arrays>`)
    already hold theirs."""
    cached = schedule.__dict__.get("_encoded")
    if cached is not None:
        return cached
    enc = _encode(schedule)
    object.__setattr__(schedule, "_encoded", enc)
    return enc


def _encode(schedule: Schedule) -> EncodedSchedule:
    return encode_rows(schedule.actions, schedule.placement, schedule.num_microbatches)


def encode_rows(rows: tuple[tuple[Action | None, ...], ...], placement: tuple[int, ...],
                num_microbatches: int) -> EncodedSchedule:
    """The encoding of per-rank action ``rows`` (for generators that build Action rows
    and then :meth:`Schedule.from_arrays <ringpipe.schedules.schedule.Schedule.from_arrays>`
    without the eager constructor's per-action checks)."""
    idle = (-1, None, -1)
    flat, pair = [], []
    for a in chain.from_iterable(rows):
        if a is not None and a.sub_actions is not None:
            flat.extend(a.sub_actions)
            pair.extend((1, 0))
        else:
            flat.append(idle if a is None else a)
            pair.append(0)
    codes = {**KIND_CODES, None: IDLE_CODE}
    try:
        stage = np.array([a[0] for a in flat], dtype=np.int64)
        kind = np.array([codes[a[1]] for a in flat], dtype=np.int64)
        microbatch = np.array([a[2] for a in flat], dtype=np.int64)
    except (TypeError, KeyError, IndexError, OverflowError):
        bad = next(
            (r, s)
            for r, row in enumerate(rows)
            for s, a in enumerate(row)
            if a is not None
            and not (
                isinstance(a, tuple)
                and len(a) in (3, 4)
                and a[1] in KIND_CODES
                and all(isinstance(x, int) for x in (a[0], a[2]))
            )
        )
        raise TypeError(
            f"schedule: rank {bad[0]} step {bad[1]} holds {rows[bad[0]][bad[1]]!r}, not an Action"
        ) from None
    row_start = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([sum(len(a.parts) if a is not None else 1 for a in row) for row in rows],
              out=row_start[1:])
    return encoded_arrays(stage, kind, microbatch, row_start, placement, num_microbatches,
                          pair)
