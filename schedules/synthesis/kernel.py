"""The list scheduler behind :func:`ringpipe.schedules.synthesize`: one Numba loop.

It builds a schedule by simulating it. Every pipeline rank keeps, per stage it holds,
the next forward, input-gradient (I) and weight-gradient (W) pass it may run (each in
micro-batch order); a pass is *ready* once its input is there (the previous stage's
forward, the next stage's I, the message time added across ranks) and, for W, once its
I ran. Repeatedly, the rank that can start something earliest starts the pass its
priority rule picks among those ready at that moment, which fixes the pass's start and
end; when every pass has run, each rank's passes in start order are its program.

**Priority** (the knobs the search in :mod:`.search` tunes):

* ``prefer_backward``: an I before a forward when both are ready (1F1B's rule);
* ``late_first``: among forwards, the deeper stage first (else the shallower);
* ``w_mode``: 0 runs a W whenever nothing else is ready; 1 only when it ends before the
  rank's next known F or I is ready (the zero-bubble heuristic's "fill the gap" rule,
  Qi et al., ICLR 2024, §3.1), or when nothing else is left; 2 runs each W right after
  its I (a full backward).

**Memory.** ``held[s]`` bytes (or units) stay from a stage's F to its I, ``pend[s]``
from its I to its W; a rank's held + pending must stay under ``cap[r]``. A new
micro-batch enters stage 0 only when every rank r can *reserve* what it will hold of it
(``sum(held[s] for s on r)``) next to what the micro-batches already in flight may still
hold there, and when at most ``limit[r]`` micro-batches are in flight on rank r (a
micro-batch leaves a rank with the I of the rank's lowest stage, its last). So every
micro-batch that entered can finish, whatever the order: the scheduler cannot deadlock.
A forward that would push a rank over the cap waits, running W passes (which only free
memory) first.

Cost: O(passes × p · v) per schedule, in compiled code.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ringpipe.schedules.kernels import KIND_F, KIND_I, KIND_W

Array = np.ndarray

OK = 0
STUCK = 1


@njit(cache=True)
def _ready(r: int, own: Array, placement: Array, m: int, nf: Array, nb: Array, nw: Array,
           end_f: Array, end_g: Array, msg: float, admit_ok: bool, usage: Array,
           held: Array, cap: Array, ready: Array) -> bool:
    """Fill ``ready[kind, i]``, the time pass ``kind`` (0 F, 1 I, 2 W) of rank r's i-th
    stage is ready (inf: not now); return whether a forward waits only for memory."""
    last = placement.shape[0] - 1
    blocked = False
    for i in range(own.shape[0]):
        s = own[i]
        ready[0, i] = ready[1, i] = ready[2, i] = np.inf
        j = nf[s]
        if j < m:
            if s == 0:
                t = 0.0 if admit_ok else np.inf
            elif nf[s - 1] > j:
                t = end_f[(s - 1) * m + j] + (msg if placement[s - 1] != r else 0.0)
            else:
                t = np.inf
            if t < np.inf and usage[r] + held[s] > cap[r] * (1 + 1e-12):
                blocked = True
                t = np.inf
            ready[0, i] = t
        j = nb[s]
        if j < nf[s]:
            t = end_f[s * m + j]
            if s < last:
                if nb[s + 1] > j:
                    t = max(t, end_g[(s + 1) * m + j] + (msg if placement[s + 1] != r
                                                         else 0.0))
                else:
                    t = np.inf
            ready[1, i] = t
        j = nw[s]
        if j < nb[s]:
            ready[2, i] = end_g[s * m + j]
    return blocked


@njit(cache=True)
def _pick(ready: Array, kind: int, own: Array, n: int, t: float, high: bool) -> int:
    """The stage of the ``kind`` pass ready by ``t``: the deepest (``high``) or the
    shallowest; -1 when none."""
    best = -1
    for i in range(n):
        if ready[kind, i] <= t:
            if best < 0 or (own[i] > best) == high:
                best = own[i]
    return best


@njit(cache=True)
def _decide(r: int, own: Array, count: int, placement: Array, m: int, nf: Array, nb: Array,
            nw: Array, end_f: Array, end_g: Array, msg: float, admit_ok: bool,
            usage: Array, held: Array, cap: Array, free: Array, forced: Array,
            bwd_w: Array, ready: Array, prefer_backward: bool, late_first: bool,
            w_mode: int) -> tuple:
    """Rank r's next pass by the priority rule: (time, stage, kind 0 F / 1 I / 2 W), time
    inf when it must wait; and a W held back by ``w_mode`` 1 (time, stage), to run only
    if every rank waits."""
    stages = own[r, :count]
    blocked = _ready(r, stages, placement, m, nf, nb, nw, end_f, end_g, msg, admit_ok,
                     usage, held, cap, ready)
    tf = free[r]
    if forced[r] >= 0:
        s = forced[r]
        return max(tf, end_g[s * m + nw[s]]), s, 2, np.inf, -1
    ci = max(tf, ready[1, :count].min())
    cf = max(tf, ready[0, :count].min())
    t = min(ci, cf)
    k = -1
    if t < np.inf:
        first, second = (1, 0) if prefer_backward else (0, 1)
        k = first if (ci if first == 1 else cf) <= t else second
    s_c = _pick(ready, k, stages, count, t, late_first) if k >= 0 else -1
    cw = max(tf, ready[2, :count].min())
    if cw < np.inf:
        s_w = _pick(ready, 2, stages, count, cw, False)
        if blocked and k < 0:
            return cw, s_w, 2, np.inf, -1  # free memory for a waiting forward
        if cw < t and (w_mode == 0 or cw + bwd_w[s_w] <= t):
            return cw, s_w, 2, np.inf, -1
        if cw < t:
            return t, s_c, k, cw, s_w
    return t, s_c, k, np.inf, -1


@njit(cache=True)
def _admit(m: int, p: int, nf: Array, nb: Array, lowest: Array, limit: Array,
           committed: Array, footprint: Array, cap: Array) -> bool:
    """Whether a new micro-batch may enter stage 0 (module docstring)."""
    if nf[0] >= m:
        return False
    for r in range(p):
        if nf[0] - nb[lowest[r]] + 1 > limit[r] or \
                committed[r] + footprint[r] > cap[r] * (1 + 1e-12):
            return False
    return True


@njit(cache=True)
def list_schedule(placement: Array, fwd: Array, bwd_i: Array, bwd_w: Array, msg: float,
                  held: Array, pend: Array, cap: Array, limit: Array, m: int,
                  prefer_backward: bool, late_first: bool, w_mode: int) -> tuple:
    """Build one schedule (module docstring); returns (status, rank, stage, kind,
    microbatch, start, end) with the passes in the order they were started. Each rank's
    next pass is kept and recomputed only when a pass changes what it may run (its own,
    its stages' neighbours', and the first stage's admission)."""
    p = cap.shape[0]
    num_stages = placement.shape[0]
    total = 3 * num_stages * m
    nf = np.zeros(num_stages, np.int64)
    nb = np.zeros(num_stages, np.int64)
    nw = np.zeros(num_stages, np.int64)
    end_f = np.zeros(num_stages * m)
    end_g = np.zeros(num_stages * m)
    free = np.zeros(p)
    usage = np.zeros(p)
    committed = np.zeros(p)
    footprint = np.zeros(p)
    lowest = np.full(p, num_stages, np.int64)
    counts = np.zeros(p, np.int64)
    for s in range(num_stages):
        footprint[placement[s]] += held[s]
        lowest[placement[s]] = min(lowest[placement[s]], s)
        counts[placement[s]] += 1
    width = counts.max()
    own = np.empty((p, width), np.int64)
    fill = np.zeros(p, np.int64)
    for s in range(num_stages):
        r = placement[s]
        own[r, fill[r]] = s
        fill[r] += 1
    ready = np.empty((3, width))
    forced = np.full(p, -1, np.int64)  # w_mode 2: the stage whose W must run next
    cand_t = np.full(p, np.inf)
    cand_s = np.full(p, -1, np.int64)
    cand_k = np.full(p, -1, np.int64)
    wait_t = np.full(p, np.inf)
    wait_s = np.full(p, -1, np.int64)
    stale = np.ones(p, np.uint8)
    out_rank = np.empty(total, np.int64)
    out_stage = np.empty(total, np.int64)
    out_kind = np.empty(total, np.int64)
    out_mb = np.empty(total, np.int64)
    out_start = np.empty(total)
    out_end = np.empty(total)
    kinds = np.array([KIND_F, KIND_I, KIND_W])
    first_rank = placement[0]
    for n in range(total):
        admit_ok = _admit(m, p, nf, nb, lowest, limit, committed, footprint, cap)
        stale[first_rank] = 1
        best_r = -1
        for r in range(p):
            if stale[r]:
                cand_t[r], cand_s[r], cand_k[r], wait_t[r], wait_s[r] = _decide(
                    r, own, counts[r], placement, m, nf, nb, nw, end_f, end_g, msg, admit_ok,
                    usage, held, cap, free, forced, bwd_w, ready, prefer_backward,
                    late_first, w_mode)
                stale[r] = 0
            if cand_k[r] >= 0 and (best_r < 0 or cand_t[r] < cand_t[best_r]):
                best_r = r
        if best_r < 0:
            for r in range(p):
                if wait_s[r] >= 0 and (best_r < 0 or wait_t[r] < wait_t[best_r]):
                    best_r = r
            if best_r < 0:
                return STUCK, out_rank[:n], out_stage[:n], out_kind[:n], out_mb[:n], \
                    out_start[:n], out_end[:n]
            r, s, k, t = best_r, wait_s[best_r], 2, wait_t[best_r]
        else:
            r, s, k, t = best_r, cand_s[best_r], cand_k[best_r], cand_t[best_r]
        if k == 0:
            j = nf[s]
            end = t + fwd[s]
            end_f[s * m + j] = end
            nf[s] += 1
            usage[r] += held[s]
            if s == 0:
                for q in range(p):
                    committed[q] += footprint[q]
            if s + 1 < num_stages:
                stale[placement[s + 1]] = 1
        elif k == 1:
            j = nb[s]
            end = t + bwd_i[s]
            end_g[s * m + j] = end
            nb[s] += 1
            usage[r] += pend[s] - held[s]
            committed[r] -= held[s]
            if w_mode == 2:
                forced[r] = s
            if s > 0:
                stale[placement[s - 1]] = 1
        else:
            j = nw[s]
            end = t + bwd_w[s]
            nw[s] += 1
            usage[r] -= pend[s]
            forced[r] = -1
        free[r] = end
        stale[r] = 1
        out_rank[n], out_stage[n], out_kind[n], out_mb[n] = r, s, kinds[k], j
        out_start[n], out_end[n] = t, end
    return OK, out_rank, out_stage, out_kind, out_mb, out_start, out_end
