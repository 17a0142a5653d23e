"""Numba loops behind the validator's checks and dry run (arrays from :mod:`.encoded`).

Kind codes come from :data:`~ringpipe.schedules.actions.KIND_CODES` (F=0, B=1, I=2,
W=3, SEND_F=4, RECV_F=5, SEND_B=6, RECV_B=7; idle=-1).
Flat index j addresses one slot; ``idx = stage * m + microbatch`` one tensor.
Channels are the compact ids of :func:`~ringpipe.schedules.encoded.message_channels`.
The semantics are documented in :mod:`.validate`; these functions return status
codes that it turns into errors. Each is O(n) time and memory, n the number of
slots (plus O(p) for the ranks and O(p*v) for the stages and channels). The
simulator's loop lives in :mod:`.sim_kernels`.
"""

from __future__ import annotations

import numpy as np

from ringpipe.kernels.jit import lazy_njit
from ringpipe.schedules.actions import KIND_CODES, ActionKind

Array = np.ndarray  # Numba ignores annotations; they document the array arguments

# The codes of :data:`~ringpipe.schedules.actions.KIND_CODES` (the one table), as the
# module-level ints Numba compiles in as constants.
KIND_F = KIND_CODES[ActionKind.FORWARD]
KIND_B = KIND_CODES[ActionKind.FULL_BACKWARD]
KIND_I = KIND_CODES[ActionKind.BACKWARD_INPUT]
KIND_W = KIND_CODES[ActionKind.BACKWARD_WEIGHT]
KIND_SEND_F = KIND_CODES[ActionKind.SEND_F]
KIND_RECV_F = KIND_CODES[ActionKind.RECV_F]
KIND_SEND_B = KIND_CODES[ActionKind.SEND_B]
KIND_RECV_B = KIND_CODES[ActionKind.RECV_B]
#: The compute kinds have the codes 0 .. NUM_COMPUTE_KINDS-1 (F, B, I, W, in that order).
NUM_COMPUTE_KINDS = 4  # an overlapped pair is encoded as its two halves
if (KIND_F, KIND_B, KIND_I, KIND_W) != tuple(range(NUM_COMPUTE_KINDS)):  # pragma: no cover
    raise ImportError("KIND_CODES must number F, B, I, W as 0, 1, 2, 3")

# dry-run status codes
OK = 0
F_BEFORE_LOCAL_INPUT = 1
F_BEFORE_RECV = 2
BACKWARD_BEFORE_F = 3
BACKWARD_BEFORE_LOCAL_GRAD = 4
BACKWARD_BEFORE_RECV = 5
W_BEFORE_I = 6
COMM_WITHOUT_REMOTE_PEER = 7
SEND_BEFORE_DATA = 8
RECV_MISMATCH = 9

# what a blocked rank waits for
WAITS_F, WAITS_GRAD, WAITS_MESSAGE = 1, 2, 3


@lazy_njit
def structure_error(
    stage: Array, kind: Array, microbatch: Array, row_start: Array, placement: Array, m: int
) -> int:
    """First flat index whose action is out of range or on the wrong rank, else -1."""
    num_stages = placement.shape[0]
    for r in range(row_start.shape[0] - 1):
        for j in range(row_start[r], row_start[r + 1]):
            if kind[j] < 0:
                continue
            s = stage[j]
            if s < 0 or s >= num_stages or microbatch[j] < 0 or microbatch[j] >= m:
                return j
            if placement[s] != r:
                return j
    return -1


@lazy_njit
def count_computes(
    stage: Array, kind: Array, microbatch: Array, num_stages: int, m: int
) -> tuple[Array, int]:
    """Per (kind F/B/I/W, tensor) run counts, and the first flat index that repeats one."""
    counts = np.zeros((NUM_COMPUTE_KINDS, num_stages * m), np.int64)
    repeat = -1
    for j in range(stage.shape[0]):
        k = kind[j]
        if 0 <= k < NUM_COMPUTE_KINDS:
            idx = stage[j] * m + microbatch[j]
            counts[k, idx] += 1
            if counts[k, idx] > 1 and repeat < 0:
                repeat = j
    return counts, repeat


@lazy_njit
def message_channel(channel: Array, kind: int, stage: int, peer: int) -> int:
    """The channel id of a message between ``stage`` and its neighbour ``peer``."""
    backward = kind == KIND_SEND_B or kind == KIND_RECV_B
    return channel[2 * min(stage, peer) + (1 if backward else 0)]


@lazy_njit
def dry_run_kernel(
    stage: Array,
    kind: Array,
    microbatch: Array,
    row_start: Array,
    placement: Array,
    m: int,
    comm_mode: bool,
    pair: Array,
    channel: Array,
    num_channels: int,
) -> tuple[int, int, int, Array, Array, Array, Array, Array]:
    """Run every rank in order; return (status, j, j2, order, pointer, waits, chan_head, nxt).

    ``channel, num_channels`` are :func:`~ringpipe.schedules.encoded.message_channels`
    of ``placement``; ``chan_head`` has one entry per channel. An overlapped pair
    (``pair[j] == 1``: slots j and j+1) starts only once its backward half's gradient is
    there too, so its two halves run as one unit.
    """
    p = row_start.shape[0] - 1
    last = placement.shape[0] - 1
    size = placement.shape[0] * m
    n = stage.shape[0]
    done_f = np.zeros(size, np.uint8)
    done_g = np.zeros(size, np.uint8)  # 1: by B, 2: by I
    arrived_f = np.zeros(size, np.uint8)
    arrived_b = np.zeros(size, np.uint8)
    chan_head = np.full(num_channels, -1, np.int64)  # FIFO of send flat indices per channel
    chan_tail = np.full(num_channels, -1, np.int64)
    nxt = np.full(n, -1, np.int64)
    wait_f = np.full(size, -1, np.int64)  # producer tensor -> first waiting rank
    wait_g = np.full(size, -1, np.int64)
    wait_next = np.full(p, -1, np.int64)
    wait_recv = np.full(num_channels, -1, np.int64)  # the rank blocked on a channel
    waits = np.zeros(p, np.int64)
    pointer = row_start[:-1].copy()
    order = np.empty(n, np.int64)
    count = 0
    ready = np.empty(p, np.int64)
    queued = np.zeros(p, np.uint8)
    top = 0
    status = OK
    other = -1
    for r in range(p - 1, -1, -1):
        ready[top] = r
        queued[r] = 1
        top += 1
    while top > 0:
        top -= 1
        r = ready[top]
        queued[r] = 0
        waits[r] = 0
        j = pointer[r]
        end = row_start[r + 1]
        while j < end:
            k = kind[j]
            if k < 0:
                j += 1
                continue
            s = stage[j]
            idx = s * m + microbatch[j]
            woken = -1
            if pair[j] == 1:  # the backward half's inputs are needed before the pair starts
                sb = stage[j + 1]
                ib = sb * m + microbatch[j + 1]
                if done_f[ib] == 0:
                    status = BACKWARD_BEFORE_F
                    j += 1
                    break
                if sb < last:
                    if placement[sb + 1] == r:
                        if done_g[ib + m] == 0:
                            status = BACKWARD_BEFORE_LOCAL_GRAD
                            j += 1
                            break
                    elif comm_mode:
                        if arrived_b[ib] == 0:
                            status = BACKWARD_BEFORE_RECV
                            j += 1
                            break
                    elif done_g[ib + m] == 0:
                        wait_next[r] = wait_g[ib + m]
                        wait_g[ib + m] = r
                        waits[r] = WAITS_GRAD
                        break
            if k == KIND_F:
                if s > 0:
                    if placement[s - 1] == r:
                        if done_f[idx - m] == 0:
                            status = F_BEFORE_LOCAL_INPUT
                            break
                    elif comm_mode:
                        if arrived_f[idx] == 0:
                            status = F_BEFORE_RECV
                            break
                    elif done_f[idx - m] == 0:
                        wait_next[r] = wait_f[idx - m]
                        wait_f[idx - m] = r
                        waits[r] = WAITS_F
                        break
                done_f[idx] = 1
                woken = wait_f[idx]
                wait_f[idx] = -1
            elif k == KIND_B or k == KIND_I:
                if done_f[idx] == 0:
                    status = BACKWARD_BEFORE_F
                    break
                if s < last:
                    if placement[s + 1] == r:
                        if done_g[idx + m] == 0:
                            status = BACKWARD_BEFORE_LOCAL_GRAD
                            break
                    elif comm_mode:
                        if arrived_b[idx] == 0:
                            status = BACKWARD_BEFORE_RECV
                            break
                    elif done_g[idx + m] == 0:
                        wait_next[r] = wait_g[idx + m]
                        wait_g[idx + m] = r
                        waits[r] = WAITS_GRAD
                        break
                done_g[idx] = 1 if k == KIND_B else 2
                woken = wait_g[idx]
                wait_g[idx] = -1
            elif k == KIND_W:
                if done_g[idx] != 2:
                    status = W_BEFORE_I
                    break
            elif k == KIND_SEND_F or k == KIND_SEND_B:
                peer = s + 1 if k == KIND_SEND_F else s - 1
                if peer < 0 or peer > last or placement[peer] == r:
                    status = COMM_WITHOUT_REMOTE_PEER
                    break
                have = done_f[idx] if k == KIND_SEND_F else done_g[idx]
                if have == 0:
                    status = SEND_BEFORE_DATA
                    break
                c = message_channel(channel, k, s, peer)  # (r, placement[peer])
                if chan_tail[c] < 0:
                    chan_head[c] = j
                else:
                    nxt[chan_tail[c]] = j
                chan_tail[c] = j
                if wait_recv[c] >= 0:
                    woken = wait_recv[c]
                    wait_recv[c] = -1
                    wait_next[woken] = -1
            else:  # RECV_F / RECV_B
                peer = s - 1 if k == KIND_RECV_F else s + 1
                if peer < 0 or peer > last or placement[peer] == r:
                    status = COMM_WITHOUT_REMOTE_PEER
                    break
                c = message_channel(channel, k, s, peer)  # (placement[peer], r)
                h = chan_head[c]
                if h < 0:
                    wait_recv[c] = r
                    waits[r] = WAITS_MESSAGE
                    break
                want = KIND_SEND_F if k == KIND_RECV_F else KIND_SEND_B
                if kind[h] != want or stage[h] != peer or microbatch[h] != microbatch[j]:
                    status = RECV_MISMATCH
                    other = h
                    break
                chan_head[c] = nxt[h]
                if nxt[h] < 0:
                    chan_tail[c] = -1
                if k == KIND_RECV_F:
                    arrived_f[idx] = 1
                else:
                    arrived_b[idx] = 1
            while woken >= 0:
                following = wait_next[woken]
                wait_next[woken] = -1
                if queued[woken] == 0:
                    queued[woken] = 1
                    ready[top] = woken
                    top += 1
                woken = following
            order[count] = j
            count += 1
            j += 1
        pointer[r] = j
        if status != OK:
            return status, j, other, order[:count], pointer, waits, chan_head, nxt
    return OK, -1, -1, order[:count], pointer, waits, chan_head, nxt
