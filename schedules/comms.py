"""The communication pass: lower a compute-only schedule to one with SEND/RECV actions.

For each compute action whose neighbour stage lives on another rank (per the
schedule's stage -> rank placement), the pass inserts, in the manner of PyTorch's
``torch.distributed.pipelining`` lowering:

* ``{s}RECV_F{mb}`` just before ``{s}F{mb}`` when stage s-1 is remote, and
  ``{s}SEND_F{mb}`` just after it when stage s+1 is remote;
* ``{s}RECV_B{mb}`` just before ``{s}B{mb}`` / ``{s}I{mb}`` when stage s+1 is remote,
  and ``{s}SEND_B{mb}`` just after it when stage s-1 is remote.

W needs nothing from other ranks. Neighbours on the same rank (interleaved with
p = 1, the turn of a V-shape) hand tensors over locally, without messages.
Sends are posted right after the data exists and receives right before it is
needed, so a schedule whose compute order respects dependencies never deadlocks
when sends do not block (isend semantics); :func:`~ringpipe.schedules.validate.dry_run`
checks it. The pass is O(actions).
"""

from __future__ import annotations

from .actions import Action as _Action
from .actions import ActionKind, B, F, I, Schedule
from .bulk import bulk_build

_SEND_F, _RECV_F = ActionKind.SEND_F, ActionKind.RECV_F
_SEND_B, _RECV_B = ActionKind.SEND_B, ActionKind.RECV_B


@bulk_build
def add_communication(schedule: Schedule) -> Schedule:
    """Return ``schedule`` with SEND/RECV actions added for its placement.

    Raises ValueError if ``schedule`` already has communication actions.
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule: expected Schedule, got {type(schedule).__name__}")
    if schedule.has_comms:
        raise ValueError("schedule: already has SEND/RECV actions")
    place = schedule.placement
    last = len(place) - 1
    # For each stage: is the previous / next stage on another rank?
    remote_prev = [s > 0 and place[s - 1] != place[s] for s in range(last + 1)]
    remote_next = [s < last and place[s + 1] != place[s] for s in range(last + 1)]
    new = tuple.__new__  # Action(...) without the NamedTuple constructor's overhead
    rows = []
    for actions in schedule.actions:
        row: list[_Action | None] = []
        append = row.append
        for action in actions:
            if action is None:
                append(None)
                continue
            stage, kind, mb = action
            if kind is F:
                if remote_prev[stage]:
                    append(new(_Action, (stage, _RECV_F, mb)))
                append(action)
                if remote_next[stage]:
                    append(new(_Action, (stage, _SEND_F, mb)))
            elif kind is B or kind is I:
                if remote_next[stage]:
                    append(new(_Action, (stage, _RECV_B, mb)))
                append(action)
                if remote_prev[stage]:
                    append(new(_Action, (stage, _SEND_B, mb)))
            else:
                append(action)
        rows.append(tuple(row))
    return Schedule(schedule.name, place, tuple(rows), schedule.num_microbatches)
