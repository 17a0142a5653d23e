"""The validator: completeness, dependency order and a deadlock-detecting dry run.

Dependencies, for stage s and micro-batch mb (S stages):

* ``F(s, mb)`` needs ``F(s-1, mb)``'s output (s > 0);
* ``B(s, mb)`` / ``I(s, mb)`` need ``F(s, mb)`` on the same rank and the input
  gradient of ``B``/``I(s+1, mb)`` (s < S-1);
* ``W(s, mb)`` needs ``I(s, mb)`` on the same rank.

The dry run executes every rank's list in order. A dependency on the same rank must
already have run (else it never will: a dependency-order error). A dependency on
another rank blocks: in a compute-only schedule the rank waits for the producer;
once SEND/RECV actions exist, the data must have arrived by a ``RECV`` earlier in
the list, and ``RECV`` blocks until the matching ``SEND`` was posted. Messages are
matched in order per (sender, receiver) channel, so the next message on a channel
must be exactly the tensor the ``RECV`` names. Sends do not block (isend semantics,
as in PyTorch's dry run). If no rank can move while some still have actions left,
the schedule deadlocks. Each rank blocks at most once per action, and a blocked
rank is woken only by the event it waits for, so the run is O(actions)
(a Numba loop, :func:`ringpipe.schedules.kernels.dry_run_kernel`).

Every failure raises :class:`ScheduleError`, whose message carries the
rank x step grid with the failing step(s) bracketed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from . import kernels
from .actions import Schedule
from .encoded import EncodedSchedule, encode
from .step_grid import format_step_grid


class ScheduleError(ValueError):
    """A schedule failed validation; ``grid`` shows where (failing steps bracketed)."""

    def __init__(
        self, reason: str, schedule: Schedule, marks: Iterable[tuple[int, int]] = ()
    ) -> None:
        self.reason = reason
        self.schedule = schedule
        self.marks = tuple(sorted(set(marks)))
        self.grid = format_step_grid(schedule, self.marks)
        super().__init__(f"{reason}\n{self.grid}")


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
    action = schedule.actions[rank][step]
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
        if a is not None and a.kind.is_compute and a.stage == stage and a.microbatch == microbatch
    ]


def check_complete(schedule: Schedule) -> None:
    """Check that each (stage, mb) runs F once and B once, or I once and W once.

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
        rank, step = enc.locate(int(repeat))
        action = schedule.actions[rank][step]
        marks = [
            (r, s)
            for r, s in _positions(schedule, action.stage, action.microbatch)
            if schedule.actions[r][s] == action
        ]
        raise ScheduleError(f"{action} runs more than once", schedule, marks)
    cf, cb, ci, cw = counts
    problems = (
        (cf == 0, "never runs F"),
        ((cb > 0) & ((ci > 0) | (cw > 0)), "runs both B and I/W"),
        (
            (cb == 0) & ((ci == 0) | (cw == 0)),
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
    rows = schedule.actions
    status, j, j2, order, pointer, waits, chan_head, nxt = kernels.dry_run_kernel(
        enc.stage,
        enc.kind,
        enc.microbatch,
        enc.row_start,
        enc.placement,
        enc.num_microbatches,
        schedule.has_comms,
    )
    if status == kernels.RECV_MISMATCH:
        (r1, s1), (r2, s2) = enc.locate(int(j)), enc.locate(int(j2))
        raise ScheduleError(
            f"{rows[r1][s1]} is matched, in order, with {rows[r2][s2]} from rank {r2} "
            "(messages on a channel must be received in the order they are sent)",
            schedule,
            [(r1, s1), (r2, s2)],
        )
    if status != kernels.OK:
        rank, step = enc.locate(int(j))
        raise ScheduleError(_describe(_REASONS[status], rows[rank][step]), schedule, [(rank, step)])
    stuck = [r for r in range(schedule.num_ranks) if pointer[r] < enc.row_start[r + 1]]
    if stuck:
        marks = [enc.locate(int(pointer[r])) for r in stuck]
        waits_for = "; ".join(
            f"rank {r} at {rows[r][s]} waits for "
            + _describe(_WAITS.get(int(waits[r]), "?"), rows[r][s])
            for r, s in marks
        )
        raise ScheduleError(f"deadlock: {waits_for}", schedule, marks)
    unreceived = []
    for head in chan_head[chan_head >= 0]:
        while head >= 0:
            unreceived.append(enc.locate(int(head)))
            head = nxt[head]
    if unreceived:
        names = ", ".join(f"{rows[r][s]} on rank {r}" for r, s in unreceived[:5])
        raise ScheduleError(f"sends never received: {names}", schedule, unreceived)
    return order


def dry_run(schedule: Schedule) -> list[tuple[int, int]]:
    """Execute ``schedule`` symbolically; return (rank, step) in one valid execution order.

    Raises :class:`ScheduleError` on an out-of-range or misplaced action, a
    dependency-order violation, a mismatched or missing message, or a deadlock.
    Does not check completeness (see :func:`check_complete`).
    """
    enc = encode(schedule)
    _check_structure(schedule, enc)
    return ExecutionOrder(schedule, enc, _dry_run(schedule, enc)).steps()


def validate(schedule: Schedule) -> ExecutionOrder:
    """Check completeness, dependency order and deadlock freedom (raises ScheduleError).

    Returns the :class:`ExecutionOrder` the dry run found, which
    :func:`~ringpipe.schedules.simulate.simulate` can reuse.
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule: expected Schedule, got {type(schedule).__name__}")
    enc = encode(schedule)
    _check_complete(schedule, enc)
    return ExecutionOrder(schedule, enc, _dry_run(schedule, enc))
