"""The validator: completeness, dependency order and a deadlock-detecting dry run.

Dependencies, for stage s and micro-batch mb (S stages):

* ``F(s, mb)`` needs ``F(s-1, mb)``'s output (s > 0);
* ``B(s, mb)`` / ``I(s, mb)`` need ``F(s, mb)`` on the same rank and the input
  gradient of ``B``/``I(s+1, mb)`` (s < S-1);
* ``W(s, mb)`` needs ``I(s, mb)`` on the same rank.

**The isend dry run** executes every rank's list in order. A dependency on the same
rank must already have run (else it never will: a dependency-order error). A
dependency on another rank blocks: in a compute-only schedule the rank waits for
the producer; once SEND/RECV actions exist, the data must have arrived by a
``RECV`` earlier in the list, and ``RECV`` blocks until the matching ``SEND`` was
posted. Messages are matched in order per channel, a channel being an ordered
pair (sender rank, receiver rank) as in NCCL, so the next message on a channel
must be exactly the tensor the ``RECV`` names. Sends do not block (isend
semantics, as in PyTorch's dry run). If no rank can move while some still have
actions left, the schedule deadlocks. Each rank blocks at most once per action,
and a blocked rank is woken only by the event it waits for, so the run is
O(actions) (a Numba loop, :func:`ringpipe.schedules.kernels.dry_run_kernel`).

**The batched blocking-send dry run** (``sends="batched"``, the default of
:func:`validate`) then models what Megatron-LM and PyTorch pipelining execute
(:mod:`ringpipe.schedules.blocking`):

* a *batch* is a maximal run of consecutive SEND/RECV actions on a rank (idle
  slots do not split it, a compute action ends it), posted all at once like
  ``torch.distributed.batch_isend_irecv``;
* the n-th send on a channel pairs with the n-th receive on it (in-order matching);
* a batch completes, and its rank moves on, only when every operation in it is
  paired with a posted operation: each send with a posted receive (sends block
  until received) and each receive with a posted send;
* the schedule deadlocks if every unfinished rank waits in a batch.

A schedule that passes the batched run passes the isend run too, and any order of
posting within a batch is equivalent. For a compute-only schedule (no SEND/RECV)
the two modes coincide. All generators, lowered by
:func:`~ringpipe.schedules.comms.add_communication`, pass the batched run (the
tests check every p <= 16, m <= 48).

Every failure raises :class:`ScheduleError`, whose message carries the
rank x step grid with the failing step(s) bracketed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ringpipe.schedules import kernels
from ringpipe.schedules.blocking import check_batched_sends
from ringpipe.schedules.encoded import EncodedSchedule, encode
from ringpipe.schedules.errors import ScheduleError
from ringpipe.schedules.schedule import Schedule

SendMode = Literal["isend", "batched"]
SEND_MODES: tuple[str, ...] = ("isend", "batched")


@dataclass(frozen=True)
class ExecutionOrder:
    """A validated schedule, its encoding, and one valid order of its slots (flat indices)."""

    schedule: Schedule
    encoded: EncodedSchedule
    order: np.ndarray

    def steps(self) -> list[tuple[int, int]]:
        """The order as (rank, step) pairs."""
        return [self.encoded.locate(int(j)) for j in self.order]


def _check_structure(schedule: Schedule, enc: EncodedSchedule) -> None:
    bad = int(
        kernels.structure_error(
            enc.stage, enc.kind, enc.microbatch, enc.row_start, enc.placement, enc.num_microbatches
        )
    )
    if bad < 0:
        return
    rank, step = enc.locate(bad)
    action = enc.action_at(bad)
    num_stages, m = schedule.num_stages, schedule.num_microbatches
    if not (0 <= action.stage < num_stages and 0 <= action.microbatch < m):
        reason = f"{action} out of range: stages are 0..{num_stages - 1}, micro-batches 0..{m - 1}"
    else:
        reason = (
            f"{action} runs on rank {rank} but stage {action.stage} is placed on "
            f"rank {schedule.placement[action.stage]}"
        )
    raise ScheduleError(reason, schedule, [(rank, step)])


def _positions(schedule: Schedule, stage: int, microbatch: int) -> list[tuple[int, int]]:
    rank = schedule.placement[stage]
    return [
        (rank, step)
        for step, a in enumerate(schedule.actions[rank])
        if a is not None and a.kind.is_compute
        and any(p.stage == stage and p.microbatch == microbatch for p in a.parts)
    ]


def check_complete(schedule: Schedule) -> None:
    """Check that each (stage, mb) runs F once and B once, or I once and W once
    (or, in a forward-only inference schedule with no B, I or W at all, F once).

    Also checks that every action has stage and micro-batch in range and runs on
    the rank its stage is placed on.
    """
    _check_complete(schedule, encode(schedule))


def _check_complete(schedule: Schedule, enc: EncodedSchedule) -> None:
    _check_structure(schedule, enc)
    m = schedule.num_microbatches
    counts, repeat = kernels.count_computes(
        enc.stage, enc.kind, enc.microbatch, schedule.num_stages, m
    )
    if repeat >= 0:
        action = enc.action_at(int(repeat))
        marks = [
            (r, s)
            for r, s in _positions(schedule, action.stage, action.microbatch)
            if action in schedule.actions[r][s].parts
        ]
        raise ScheduleError(f"{action} runs more than once", schedule, marks)
    cf, cb, ci, cw = counts
    # a forward-only (inference) schedule has no backward anywhere: F alone completes it
    training = bool(cb.any() or ci.any() or cw.any())
    problems = (
        (cf == 0, "never runs F"),
        ((cb > 0) & ((ci > 0) | (cw > 0)), "runs both B and I/W"),
        (
            training & (cb == 0) & ((ci == 0) | (cw == 0)),
            "has no complete backward (needs B, or both I and W)",
        ),
    )
    for mask, what in problems:
        bad = np.flatnonzero(mask)
        if bad.size:
            stage, mb = divmod(int(bad[0]), m)
            raise ScheduleError(
                f"stage {stage} micro-batch {mb} {what}", schedule, _positions(schedule, stage, mb)
            )


_REASONS = {
    kernels.F_BEFORE_LOCAL_INPUT: "{a} runs before {prev}F{mb}, its input on the same rank",
    kernels.F_BEFORE_RECV: "{a} runs before {stage}RECV_F{mb} brought its input",
    kernels.BACKWARD_BEFORE_F: "{a} runs before {stage}F{mb}",
    kernels.BACKWARD_BEFORE_LOCAL_GRAD: "{a} runs before the backward of stage {next} "
    "micro-batch {mb}, on the same rank",
    kernels.BACKWARD_BEFORE_RECV: "{a} runs before {stage}RECV_B{mb} brought its gradient",
    kernels.W_BEFORE_I: "{a} runs before {stage}I{mb}",
    kernels.COMM_WITHOUT_REMOTE_PEER: "{a} has no peer stage on another rank",
    kernels.SEND_BEFORE_DATA: "{a} sends a tensor not computed yet on this rank",
}
_WAITS = {
    kernels.WAITS_F: "the forward of stage {prev} micro-batch {mb}",
    kernels.WAITS_GRAD: "the backward of stage {next} micro-batch {mb}",
    kernels.WAITS_MESSAGE: "a message that is never sent",
}


def _describe(template: str, action: object) -> str:
    stage, mb = action.stage, action.microbatch  # type: ignore[attr-defined]
    return template.format(a=action, stage=stage, prev=stage - 1, next=stage + 1, mb=mb)


def _dry_run(schedule: Schedule, enc: EncodedSchedule) -> np.ndarray:
    status, j, j2, order, pointer, waits, chan_head, nxt = kernels.dry_run_kernel(
        *enc.program, *enc.channels
    )
    stuck = [r for r in range(schedule.num_ranks) if pointer[r] < enc.row_start[r + 1]]
    if status == kernels.OK and not stuck and not (chan_head >= 0).any():
        return order  # valid: the Action objects are only needed to report an error
    rows, at = schedule.actions, enc.action_at
    if status == kernels.RECV_MISMATCH:
        (r1, s1), (r2, s2) = enc.locate(int(j)), enc.locate(int(j2))
        raise ScheduleError(
            f"{at(int(j))} is matched, in order, with {at(int(j2))} from rank {r2} "
            "(messages on a channel must be received in the order they are sent)",
            schedule,
            [(r1, s1), (r2, s2)],
        )
    if status != kernels.OK:
        rank, step = enc.locate(int(j))
        raise ScheduleError(_describe(_REASONS[status], at(int(j))), schedule, [(rank, step)])
    if stuck:
        marks = [enc.locate(int(pointer[r])) for r in stuck]
        waiting = []
        for r in stuck:
            j = int(pointer[r])
            # a pair waits for its backward half's gradient before its forward half runs
            half = j + 1 if enc.pair[j] and waits[r] == kernels.WAITS_GRAD else j
            rank, step = enc.locate(j)
            waiting.append(f"rank {r} at {rows[rank][step]} waits for "
                           + _describe(_WAITS.get(int(waits[r]), "?"), at(half)))
        raise ScheduleError(f"deadlock: {'; '.join(waiting)}", schedule, marks)
    unreceived = []
    for head in chan_head[chan_head >= 0]:
        while head >= 0:
            unreceived.append(enc.locate(int(head)))
            head = nxt[head]
    if unreceived:
        names = ", ".join(f"{rows[r][s]} on rank {r}" for r, s in unreceived[:5])  # messages
        raise ScheduleError(f"sends never received: {names}", schedule, unreceived)
    return order


def _check_sends(sends: object) -> None:
    if not isinstance(sends, str):
        raise TypeError(f"sends: expected str, got {type(sends).__name__}")
    if sends not in SEND_MODES:
        raise ValueError(f"sends: unknown mode {sends!r}; known: {', '.join(SEND_MODES)}")


def _run(schedule: Schedule, enc: EncodedSchedule, sends: str) -> np.ndarray:
    order = _dry_run(schedule, enc)
    if sends == "batched" and enc.has_comms:
        check_batched_sends(schedule, enc)
    return order


def execution_order(
    schedule: Schedule, sends: SendMode = "isend", *, encoded: EncodedSchedule | None = None
) -> ExecutionOrder:
    """Dry-run ``schedule`` (module docstring); return the isend run's :class:`ExecutionOrder`.

    ``sends="isend"`` (the default) lets sends return at once; ``sends="batched"``
    also runs the batched blocking-send model. The order is the isend run's in
    both cases: the one the simulator times. ``encoded``, if given, must be
    ``encode(schedule)``; it saves encoding again. Raises :class:`ScheduleError` on
    an out-of-range or misplaced action, a dependency-order violation, a
    mismatched or missing message, or a deadlock. Does not check completeness
    (see :func:`check_complete`).
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule: expected Schedule, got {type(schedule).__name__}")
    _check_sends(sends)
    enc = encode(schedule) if encoded is None else encoded
    _check_structure(schedule, enc)
    return ExecutionOrder(schedule, enc, _run(schedule, enc, sends))


def dry_run(schedule: Schedule, sends: SendMode = "isend") -> list[tuple[int, int]]:
    """:func:`execution_order` as (rank, step) pairs; same arguments and errors."""
    return execution_order(schedule, sends).steps()


def validate(schedule: Schedule, sends: SendMode = "batched") -> ExecutionOrder:
    """Check completeness, dependency order and deadlock freedom (raises ScheduleError).

    By default deadlock freedom is checked with batched blocking sends, the
    stricter model (module docstring); ``sends="isend"`` checks only the isend one.
    Returns the :class:`ExecutionOrder` the isend dry run found, which
    :func:`~ringpipe.schedules.simulate.simulate` can reuse.
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule: expected Schedule, got {type(schedule).__name__}")
    _check_sends(sends)
    enc = encode(schedule)
    _check_complete(schedule, enc)
    return ExecutionOrder(schedule, enc, _run(schedule, enc, sends))
