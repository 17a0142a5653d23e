"""Numba loops behind the validator and the simulator (arrays from :mod:`.encoded`).

Kind codes: F=0, B=1, I=2, W=3, SEND_F=4, RECV_F=5, SEND_B=6, RECV_B=7, idle=-1.
Flat index j addresses one slot; ``idx = stage * m + microbatch`` one tensor.
The semantics are documented in :mod:`.validate` and :mod:`.simulate`; these
functions return status codes that those modules turn into errors. Each is O(n).
"""

from __future__ import annotations

import numpy as np
from numba import njit

Array = np.ndarray  # Numba ignores annotations; they document the array arguments

KIND_F, KIND_B, KIND_I, KIND_W = 0, 1, 2, 3
KIND_SEND_F, KIND_RECV_F, KIND_SEND_B, KIND_RECV_B = 4, 5, 6, 7

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


@njit(cache=True)
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


@njit(cache=True)
def count_computes(
    stage: Array, kind: Array, microbatch: Array, num_stages: int, m: int
) -> tuple[Array, int]:
    """Per (kind F/B/I/W, tensor) run counts, and the first flat index that repeats one."""
    counts = np.zeros((4, num_stages * m), np.int64)
    repeat = -1
    for j in range(stage.shape[0]):
        k = kind[j]
        if 0 <= k < 4:
            idx = stage[j] * m + microbatch[j]
            counts[k, idx] += 1
            if counts[k, idx] > 1 and repeat < 0:
                repeat = j
    return counts, repeat


@njit(cache=True)
def dry_run_kernel(
    stage: Array,
    kind: Array,
    microbatch: Array,
    row_start: Array,
    placement: Array,
    m: int,
    comm_mode: bool,
) -> tuple[int, int, int, Array, Array, Array, Array, Array]:
    """Run every rank in order; return (status, j, j2, order, pointer, waits, chan_head, nxt)."""
    p = row_start.shape[0] - 1
    last = placement.shape[0] - 1
    size = placement.shape[0] * m
    n = stage.shape[0]
    done_f = np.zeros(size, np.uint8)
    done_g = np.zeros(size, np.uint8)  # 1: by B, 2: by I
    arrived_f = np.zeros(size, np.uint8)
    arrived_b = np.zeros(size, np.uint8)
    chan_head = np.full(p * p, -1, np.int64)  # FIFO of send flat indices per (src, dst)
    chan_tail = np.full(p * p, -1, np.int64)
    nxt = np.full(n, -1, np.int64)
    wait_f = np.full(size, -1, np.int64)  # producer tensor -> first waiting rank
    wait_g = np.full(size, -1, np.int64)
    wait_next = np.full(p, -1, np.int64)
    wait_recv = np.full(p * p, -1, np.int64)
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
                c = r * p + placement[peer]
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
                c = placement[peer] * p + r
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


@njit(cache=True)
def simulate_kernel(
    stage: Array,
    kind: Array,
    microbatch: Array,
    row_start: Array,
    placement: Array,
    m: int,
    comm_mode: bool,
    order: Array,
    fwd: Array,
    bwd_i: Array,
    bwd_w: Array,
    msg: object,
) -> tuple[Array, Array, Array, Array, Array, Array, Array]:
    """Time the actions in dry-run ``order``; cost arrays are int64 (exact) or float64."""
    p = row_start.shape[0] - 1
    num_stages = placement.shape[0]
    last = num_stages - 1
    size = num_stages * m
    n = stage.shape[0]
    start = np.zeros(n, fwd.dtype)
    finish = np.zeros(n, fwd.dtype)
    end_f = np.zeros(size, fwd.dtype)
    end_g = np.zeros(size, fwd.dtype)
    arrival = np.zeros(2 * size, fwd.dtype)
    free = np.zeros(p, fwd.dtype)
    busy = np.zeros(p, fwd.dtype)
    held_stage = np.zeros(num_stages, np.int64)
    peak_stage = np.zeros(num_stages, np.int64)
    held_rank = np.zeros(p, np.int64)
    peak_rank = np.zeros(p, np.int64)
    pending_w = np.zeros(p, np.int64)
    peak_w = np.zeros(p, np.int64)
    rank_of = np.empty(n, np.int64)
    for r in range(p):
        rank_of[row_start[r] : row_start[r + 1]] = r
    for t in range(order.shape[0]):
        j = order[t]
        r = rank_of[j]
        s = stage[j]
        k = kind[j]
        idx = s * m + microbatch[j]
        begin = free[r]
        if k == KIND_F:
            if s > 0:
                if placement[s - 1] == r:
                    ready = end_f[idx - m]
                elif comm_mode:
                    ready = arrival[idx]  # its RECV_F was posted earlier on this rank
                else:
                    ready = end_f[idx - m] + msg
                begin = max(begin, ready)
            done = begin + fwd[s]
            end_f[idx] = done
            held_stage[s] += 1
            held_rank[r] += 1
            peak_stage[s] = max(peak_stage[s], held_stage[s])
            peak_rank[r] = max(peak_rank[r], held_rank[r])
        elif k == KIND_B or k == KIND_I:
            if s < last:
                if placement[s + 1] == r:
                    ready = end_g[idx + m]
                elif comm_mode:
                    ready = arrival[size + idx]
                else:
                    ready = end_g[idx + m] + msg
                begin = max(begin, ready)
            done = begin + (bwd_i[s] + bwd_w[s] if k == KIND_B else bwd_i[s])
            end_g[idx] = done
            held_stage[s] -= 1
            held_rank[r] -= 1
            if k == KIND_I:
                pending_w[r] += 1
                peak_w[r] = max(peak_w[r], pending_w[r])
        elif k == KIND_W:
            done = begin + bwd_w[s]
            pending_w[r] -= 1
        elif k == KIND_SEND_F:
            arrival[idx + m] = begin + msg
            done = begin
        elif k == KIND_SEND_B:
            arrival[size + idx - m] = begin + msg
            done = begin
        else:  # RECV_F / RECV_B: posting takes no time; the consumer waits for arrival
            done = begin
        if k <= KIND_W:
            busy[r] += done - begin
        start[j] = begin
        finish[j] = done
        free[r] = done
    return start, finish, busy, free, peak_stage, peak_rank, peak_w
