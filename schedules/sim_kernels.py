"""The simulator's Numba loop: time the actions of a dry-run order (arrays from :mod:`.encoded`).

Kind codes and index conventions are those of :mod:`.kernels`; the semantics
(dependency timing, peak activations) are documented in :mod:`.simulate`.
O(actions).
"""

from __future__ import annotations

import numpy as np

from ringpipe.kernels.jit import lazy_njit
from ringpipe.schedules.kernels import (
    KIND_B,
    KIND_F,
    KIND_I,
    KIND_SEND_B,
    KIND_SEND_F,
    KIND_W,
)

Array = np.ndarray  # Numba ignores annotations; they document the array arguments


@lazy_njit
def simulate_kernel(
    stage: Array,
    kind: Array,
    microbatch: Array,
    row_start: Array,
    placement: Array,
    m: int,
    comm_mode: bool,
    pair: Array,
    order: Array,
    fwd: Array,
    bwd_i: Array,
    bwd_w: Array,
    msg: object,
    concurrent_pairs: bool = False,
) -> tuple[Array, Array, Array, Array, Array, Array, Array]:
    """Time the actions in dry-run ``order``; cost arrays are int64 (exact) or float64.

    An overlapped pair (``pair[j] == 1``: slots j, j+1, consecutive in ``order``) starts
    when both halves' inputs are there; its halves then run back to back, or, with
    ``concurrent_pairs`` (the communication pass's unit clock), side by side.
    """
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
        if pair[j] == 1:  # wait for the backward half's gradient too (see validate)
            sb = stage[j + 1]
            ib = sb * m + microbatch[j + 1]
            if sb < last:
                if placement[sb + 1] == r:
                    begin = max(begin, end_g[ib + m])
                elif comm_mode:
                    begin = max(begin, arrival[size + ib])
                else:
                    begin = max(begin, end_g[ib + m] + msg)
        elif concurrent_pairs and j > 0 and pair[j - 1] == 1 and rank_of[j - 1] == r:
            begin = start[j - 1]  # the second half starts with the first
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
        free[r] = max(free[r], done)
    return start, finish, busy, free, peak_stage, peak_rank, peak_w
