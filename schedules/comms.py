"""The communication pass: lower a compute-only schedule to one with SEND/RECV actions.

Every compute action whose neighbour stage lives on another rank (per the
schedule's stage -> rank placement) exchanges one message, named as in PyTorch's
``torch.distributed.pipelining``:

* ``{s}F{mb}`` with stage s+1 remote: ``{s}SEND_F{mb}`` on its rank, ``{s+1}RECV_F{mb}``
  on the rank of stage s+1;
* ``{s}B{mb}`` / ``{s}I{mb}`` with stage s-1 remote: ``{s}SEND_B{mb}`` and
  ``{s-1}RECV_B{mb}``.

W needs nothing from other ranks; neighbours on the same rank (interleaved with
p = 1, the turn of a V) hand tensors over locally, without messages.

**Where the messages go: a common clock.** Runtimes post a step's sends and
receives together and wait for all of them (``batch_isend_irecv``; see
:mod:`ringpipe.schedules.blocking`), and NCCL matches messages between two ranks
in posting order. Placing each SEND right after its producer and each RECV right
before its consumer is safe only when sends never block; with blocking sends it
deadlocks interleaved 1F1B (a lone ``SEND_B`` waits for a receive its peer posts
only after it waits for us), and V-shaped placements mix two streams on one
channel in different orders at the two ends. Instead, the pass times the schedule
on a unit clock, every compute action (F, B, I or W) taking one tick with free
communication, and puts message x, produced at tick t, into the gap at tick t on
*both* ranks: the sender's gap right after the producer, and the receiver's gap
before its first compute action that starts at or after t (never later than the
consumer, which starts at >= t). Within a gap, actions are sorted by tick.

An overlapped F/B pair is one unit on this clock: it starts when both its inputs are
there and both its outputs leave at its end, and no message goes between its halves,
so the argument below holds with the pair as one action.

Why that cannot deadlock (batched, blocking, in-order): with unit ticks every rank
is between two actions at every integer tick, so the gap holding tick t covers the
ticks ``[end(c_i), start(c_{i+1})]`` and every operation of tick t sits in a gap
covering t on both of its ranks. By induction on t: once all batches whose latest
tick is < t have completed, every rank reaches its gap covering t (the batches
before it hold only ticks < t) and posts it, so every operation of tick t finds its
partner posted and every batch whose latest tick is t completes. In-order matching
holds because both ends order a channel's messages by tick, and a rank finishes
at most one action, hence sends at most one message per channel, per tick.
Costs: one isend dry run and one pass of the simulator's loop (both Numba) plus
NumPy passes over the arrays (a sort, hence O(n log n) with a tiny constant).
"""

from __future__ import annotations

import numpy as np

from ringpipe.schedules import kernels, sim_kernels
from ringpipe.schedules.actions import ActionKind
from ringpipe.schedules.encoded import encode, encoded_arrays
from ringpipe.schedules.schedule import Schedule
from ringpipe.schedules.validate import ExecutionOrder, execution_order

_SEND_F, _RECV_F = ActionKind.SEND_F.code, ActionKind.RECV_F.code
_SEND_B, _RECV_B = ActionKind.SEND_B.code, ActionKind.RECV_B.code


def unit_clock(order: ExecutionOrder) -> tuple[np.ndarray, np.ndarray]:
    """Start and end tick of every slot of ``order.schedule`` (flat, as in ``encode``).

    Every compute action takes one tick (B too, and an overlapped pair as a whole: its
    halves side by side), communication is free, and each action starts as soon as its
    rank is free and its inputs exist; ``order`` is the isend dry run's order
    (:func:`~ringpipe.schedules.validate.execution_order`).
    """
    enc = order.encoded
    kind = enc.kind.copy()
    kind[kind == kernels.KIND_B] = kernels.KIND_I  # same dependencies; one tick, like I
    ones = np.ones(order.schedule.num_stages, np.int64)
    start, end, *_ = sim_kernels.simulate_kernel(
        enc.stage, kind, enc.microbatch, enc.row_start, enc.placement,
        enc.num_microbatches, False, enc.pair, order.order, ones, ones, ones, np.int64(0),
        True,
    )  # fmt: skip
    return start, end


def _messages(schedule: Schedule) -> tuple[np.ndarray, ...]:
    """Every operation as parallel arrays: slot key, tick, is_recv, stage, kind, mb, rank.

    The slot key of an operation going before flat index f on rank r is ``f + r``;
    the end of rank r's row is ``row_start[r+1] + r``. Keys increase along the
    rows, rank by rank, and differ between ranks.
    """
    enc = encode(schedule)
    if enc.has_comms:
        raise ValueError("schedule: already has SEND/RECV actions")
    order = execution_order(schedule, "isend", encoded=enc)
    start, end = unit_clock(order)
    place, kind, stage, mb = enc.placement, enc.kind, enc.stage, enc.microbatch
    p, last = schedule.num_ranks, schedule.num_stages - 1
    rank = np.repeat(np.arange(p), np.diff(enc.row_start))
    forward = (kind == kernels.KIND_F) & (stage < last)
    forward[forward] = place[stage[forward] + 1] != rank[forward]
    backward = ((kind == kernels.KIND_B) | (kind == kernels.KIND_I)) & (stage > 0)
    backward[backward] = place[stage[backward] - 1] != rank[backward]
    src = np.flatnonzero(forward | backward)
    fwd = forward[src]
    peer_stage = np.where(fwd, stage[src] + 1, stage[src] - 1)
    peer = place[peer_stage]
    tick = end[src]
    # slots a message may go before: compute actions, but never the second half of a pair
    second = np.zeros(kind.size, bool)
    second[1:] = enc.pair[:-1] == 1
    computes = np.append(np.flatnonzero((kind >= 0) & ~second), enc.row_start[-1])
    # the sender's slot: its next compute action, else its row end
    send_slot = computes[np.searchsorted(computes, src, side="right")]
    send_slot = np.minimum(send_slot, enc.row_start[rank[src] + 1])
    # the receiver's slot: its first compute action starting at tick >= t, else its row end
    horizon = int(end.max(initial=0)) + 1
    keys = rank[computes[:-1]] * horizon + start[computes[:-1]]  # increasing
    recv_slot = computes[np.searchsorted(keys, peer * horizon + tick, side="left")]
    recv_slot = np.minimum(recv_slot, enc.row_start[peer + 1])
    return (
        np.concatenate([send_slot + rank[src], recv_slot + peer]),
        np.concatenate([tick, tick]),
        np.repeat(np.array([0, 1]), src.size),
        np.concatenate([stage[src], peer_stage]),
        np.concatenate([np.where(fwd, _SEND_F, _SEND_B), np.where(fwd, _RECV_F, _RECV_B)]),
        np.concatenate([mb[src], mb[src]]),
        np.concatenate([rank[src], peer]),
    )


def add_communication(schedule: Schedule) -> Schedule:
    """Return ``schedule`` with SEND/RECV actions placed on the unit clock (module docstring).

    Works on the arrays of :mod:`.encoded` end to end (a stable sort of the operations,
    then a merge with the existing slots by key), so the result is array-backed; its
    ``actions`` are built on demand.
    Raises ValueError if ``schedule`` already has communication actions, and
    :class:`~ringpipe.schedules.errors.ScheduleError` (a ValueError) if its compute
    order is malformed or deadlocks, since it then has no clock.
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule: expected Schedule, got {type(schedule).__name__}")
    enc = encode(schedule)
    slot, tick, is_recv, stage, kind, mb, rank = _messages(schedule)
    # Operations in posting order: by slot key, then tick, receives after sends (stable).
    by = np.argsort((slot * (int(tick.max(initial=0)) + 1) + tick) * 2 + is_recv,
                    kind="stable")
    op_key = slot[by]
    # Existing slot f of rank r has key f + r (increasing) and goes after the operations
    # keyed there; merge the two sorted sequences by position.
    own_rank = np.repeat(np.arange(schedule.num_ranks), np.diff(enc.row_start))
    own_key = np.arange(enc.stage.size) + own_rank
    op_at = np.arange(op_key.size) + np.searchsorted(own_key, op_key, side="left")
    own_at = np.arange(own_key.size) + np.searchsorted(op_key, own_key, side="right")
    total = op_key.size + own_key.size
    merged = []
    for ops, own in ((stage[by], enc.stage), (kind[by], enc.kind), (mb[by], enc.microbatch)):
        column = np.empty(total, np.int64)
        column[op_at] = ops
        column[own_at] = own
        merged.append(column)
    pair = np.zeros(total, np.uint8)
    pair[own_at] = enc.pair
    counts = np.bincount(rank, minlength=schedule.num_ranks) + np.diff(enc.row_start)
    row_start = np.zeros(schedule.num_ranks + 1, dtype=np.int64)
    np.cumsum(counts, out=row_start[1:])
    lowered = encoded_arrays(*merged, row_start, schedule.placement, schedule.num_microbatches,
                             pair)
    return Schedule.from_arrays(schedule.name, schedule.placement, lowered,
                                schedule.num_microbatches)
