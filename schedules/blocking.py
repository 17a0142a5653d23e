"""The batched blocking-send dry run: what Megatron-LM and PyTorch pipelining execute.

Real runtimes do not use fire-and-forget sends. Megatron-LM's
``p2p_communication._communicate`` and PyTorch pipelining's runtime post a step's
sends and receives together with ``torch.distributed.batch_isend_irecv`` and then
wait for all of them; NCCL matches the point-to-point operations between two ranks
in the order they are posted. This module checks a lowered schedule under exactly
that model:

* a **batch** is a maximal run of consecutive SEND/RECV actions on one rank (idle
  slots do not split a run; any compute action ends it);
* a rank **posts** a batch when its program reaches it, all its operations at once;
* messages are matched **in order per channel** (sender rank, receiver rank): the
  n-th send from a to b pairs with the n-th receive at b from a;
* a batch **completes** when every operation in it is paired with a posted
  operation on the peer: every send with a posted receive (sends block until
  received, as a rendezvous send of a large tensor does) and every receive with a
  posted send. Only then does the rank move past it.

A rank that cannot complete its batch waits; if every unfinished rank waits, the
schedule deadlocks. Compute actions never block here: the isend dry run
(:func:`ringpipe.schedules.kernels.dry_run_kernel`) has already checked that every
remote input arrives by an earlier RECV on the same rank, and that the pairing is
consistent (same tensor on both ends, nothing unreceived). So this pass only walks
the batches, and it is stricter than the isend run: a schedule that passes it also
passes that one.

Cost: each operation is visited when its batch is posted and each batch is resumed
at most once per wake-up, and a batch is woken only when its last pending partner
posts, so the run is O(actions).
"""

from __future__ import annotations

import numpy as np

from ringpipe.kernels.jit import lazy_njit
from ringpipe.schedules.encoded import EncodedSchedule
from ringpipe.schedules.errors import ScheduleError
from ringpipe.schedules.kernels import (
    KIND_RECV_B,
    KIND_RECV_F,
    KIND_SEND_B,
    KIND_SEND_F,
    message_channel,
)
from ringpipe.schedules.schedule import Schedule

Array = np.ndarray

NO_PARTNER = -1


@lazy_njit
def pair_messages(
    stage: Array, kind: Array, row_start: Array, placement: Array, channel: Array, num_channels: int
) -> tuple[Array, Array]:
    """Pair the n-th send and the n-th receive of every channel; return (partner, peer).

    ``channel, num_channels`` are :func:`~ringpipe.schedules.encoded.message_channels`
    of ``placement``. ``partner[j]`` is the flat index of the operation that j pairs
    with (-1 when the other side runs out first, or j is not a message); ``peer[j]``
    the rank at the other end of message j.
    """
    p = row_start.shape[0] - 1
    n = stage.shape[0]
    peer = np.full(n, -1, np.int64)
    channel_of = np.full(n, -1, np.int64)
    sends = np.zeros(num_channels, np.int64)
    recvs = np.zeros(num_channels, np.int64)
    seq = np.zeros(n, np.int64)
    for r in range(p):
        for j in range(row_start[r], row_start[r + 1]):
            k = kind[j]
            if k < KIND_SEND_F:
                continue
            s = stage[j] + 1 if k == KIND_SEND_F or k == KIND_RECV_B else stage[j] - 1
            if s < 0 or s >= placement.shape[0] or placement[s] == r:
                continue  # no remote peer (the isend run reports it): never paired
            peer[j] = placement[s]
            c = message_channel(channel, k, stage[j], s)
            if k == KIND_SEND_F or k == KIND_SEND_B:
                seq[j] = sends[c]
                sends[c] += 1
            else:
                seq[j] = recvs[c]
                recvs[c] += 1
            channel_of[j] = c
    first = np.zeros(num_channels + 1, np.int64)  # sends of channel c: first[c] .. first[c+1]
    for c in range(num_channels):
        first[c + 1] = first[c] + sends[c]
    send_at = np.empty(first[num_channels], np.int64)
    for j in range(n):
        k = kind[j]
        if (k == KIND_SEND_F or k == KIND_SEND_B) and channel_of[j] >= 0:
            send_at[first[channel_of[j]] + seq[j]] = j
    partner = np.full(n, NO_PARTNER, np.int64)
    for j in range(n):
        k = kind[j]
        if channel_of[j] < 0:
            continue
        if (k == KIND_RECV_F or k == KIND_RECV_B) and seq[j] < sends[channel_of[j]]:
            q = send_at[first[channel_of[j]] + seq[j]]
            partner[j] = q
            partner[q] = j
    return partner, peer


@lazy_njit
def batched_dry_run_kernel(
    kind: Array, row_start: Array, partner: Array
) -> tuple[Array, Array, Array, Array, Array, Array]:
    """Walk every rank's batches; return (batch_of, start, end, current, first, posted).

    Batches are numbered rank by rank: rank r owns ``first[r] .. first[r+1]-1`` and
    batch b spans flat indices ``start[b] .. end[b]-1``. ``current[r]`` is the batch
    rank r is blocked in, or ``first[r+1]`` when it finished; ``posted[b]`` says
    whether batch b was reached.
    """
    p = row_start.shape[0] - 1
    n = kind.shape[0]
    batch_of = np.full(n, -1, np.int64)
    starts = np.empty(n + 1, np.int64)
    ends = np.empty(n + 1, np.int64)
    first = np.zeros(p + 1, np.int64)  # rank r's batches: first[r] .. first[r+1]
    nb = 0
    for r in range(p):
        first[r] = nb
        open_batch = False
        for j in range(row_start[r], row_start[r + 1]):
            k = kind[j]
            if k < 0:
                continue
            if k < KIND_SEND_F:
                open_batch = False
                continue
            if not open_batch:
                starts[nb] = j
                nb += 1
                open_batch = True
            batch_of[j] = nb - 1
            ends[nb - 1] = j + 1
    first[p] = nb
    rank_of_batch = np.empty(nb, np.int64)
    for r in range(p):
        rank_of_batch[first[r] : first[r + 1]] = r
    posted = np.zeros(nb, np.uint8)
    pending = np.zeros(nb, np.int64)
    current = first[:p].copy()
    ready = np.empty(p, np.int64)
    queued = np.ones(p, np.uint8)
    for r in range(p):
        ready[r] = p - 1 - r
    top = p
    while top > 0:
        top -= 1
        r = ready[top]
        queued[r] = 0
        while current[r] < first[r + 1]:
            b = current[r]
            if posted[b] == 0:
                posted[b] = 1
                for j in range(starts[b], ends[b]):
                    if kind[j] < KIND_SEND_F:
                        continue  # an idle slot inside the run
                    q = partner[j]
                    if q >= 0 and posted[batch_of[q]] == 1:
                        bq = batch_of[q]
                        pending[bq] -= 1
                        waiter = rank_of_batch[bq]
                        if pending[bq] == 0 and queued[waiter] == 0:
                            queued[waiter] = 1
                            ready[top] = waiter
                            top += 1
                    else:
                        pending[b] += 1
            if pending[b] > 0:
                break
            current[r] += 1
    return batch_of, starts[:nb].copy(), ends[:nb].copy(), current, first, posted


def check_batched_sends(schedule: Schedule, enc: EncodedSchedule) -> None:
    """Raise :class:`ScheduleError` if ``schedule`` deadlocks with batched blocking sends.

    Call it on a schedule with SEND/RECV actions that passed the isend dry run
    (which checks the pairing this run relies on). The error names, for each
    blocked rank, the operations of its batch that found no posted partner and
    what they wait for, and marks them in the grid.
    """
    partner, _ = pair_messages(enc.stage, enc.kind, enc.row_start, enc.placement, *enc.channels)
    batch_of, start, end, current, first, posted = batched_dry_run_kernel(
        enc.kind, enc.row_start, partner
    )
    if all(current[r] >= first[r + 1] for r in range(schedule.num_ranks)):
        return  # no rank blocks; the Action objects are only needed to report one
    rows = schedule.actions
    marks: list[tuple[int, int]] = []
    waits: list[str] = []
    for r in range(schedule.num_ranks):
        b = int(current[r])
        if b >= first[r + 1]:
            continue
        ops = [j for j in range(int(start[b]), int(end[b])) if enc.kind[j] >= 0]
        batch = " ".join(str(rows[r][enc.locate(j)[1]]) for j in ops)
        unmatched = []
        for j in ops:
            q = int(partner[j])
            if q >= 0 and posted[batch_of[q]]:
                continue
            step = enc.locate(j)[1]
            marks.append((r, step))
            if q < 0:
                unmatched.append(f"{rows[r][step]} has no partner")
            else:
                qr, qs = enc.locate(q)
                unmatched.append(f"{rows[r][step]} waits for {rows[qr][qs]} on rank {qr}")
        waits.append(f"rank {r} blocks in batch [{batch}]: " + ", ".join(unmatched))
    if waits:
        raise ScheduleError(
            "deadlock with blocking sends (batched, matched in order per channel): "
            + "; ".join(waits),
            schedule,
            marks,
        )
