"""Peak activation memory of a schedule, rank by rank, from its action order alone.

Each stage s has ``held[s]`` bytes (or units) per micro-batch from its F until its B or
I, ``pending[s]`` from its I until its W, and ``transient[s]`` that exist only while it
runs a backward. Walking a rank's actions in order, F adds ``held``, B removes it, I
trades it for ``pending`` and W frees that; the rank's peak is the largest running total,
or the total just before a backward plus that stage's transient. An overlapped pair
counts as its two halves (:mod:`.encoded`). With ``held = 1`` and ``pending = 0`` this
is the simulator's ``peak_activations``. O(actions), NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real

import numpy as np

from ringpipe.schedules.encoded import EncodedSchedule
from ringpipe.schedules.kernels import KIND_B, KIND_F, KIND_I, KIND_W

__all__ = ["peak_memory", "walk_plan"]

WalkPlan = tuple[np.ndarray, ...]


def walk_plan(encoded: EncodedSchedule) -> WalkPlan:
    """What :func:`peak_memory` needs of a schedule's encoding, computed once: each
    slot's stage, the slots of each kind, the rank of each slot and the ranks' first
    slots (idle slots and messages count for nothing)."""
    kind = encoded.kind
    rows = np.repeat(np.arange(len(encoded.row_start) - 1), np.diff(encoded.row_start))
    return (np.maximum(encoded.stage, 0), *(np.flatnonzero(kind == k) for k in
                                           (KIND_F, KIND_B, KIND_I, KIND_W)),
            rows, encoded.row_start[:-1])


def peak_memory(plan: WalkPlan | EncodedSchedule, held: Sequence[Real],
                pending: Sequence[Real] | None = None,
                transient: Sequence[Real] | None = None) -> tuple[float, ...]:
    """Per rank, the peak of held + pending bytes over its action order (module
    docstring); ``plan``: a :func:`walk_plan` or an encoding."""
    if isinstance(plan, EncodedSchedule):
        plan = walk_plan(plan)
    stage, f, b, i, w, rows, starts = plan
    zeros = [0.0] * len(held)
    h, p, t = (np.asarray(x, dtype=np.float64) for x in
               (held, zeros if pending is None else pending,
                zeros if transient is None else transient))
    delta = np.zeros(stage.size)
    delta[f] = h[stage[f]]
    delta[b] = -h[stage[b]]
    delta[i] = p[stage[i]] - h[stage[i]]
    delta[w] = -p[stage[w]]
    total = np.cumsum(delta)
    before_row = np.where(starts > 0, total[np.maximum(starts - 1, 0)], 0.0)
    after = total - before_row[rows]
    peak = after.copy()
    for idx in (b, i):
        peak[idx] = np.maximum(after[idx], after[idx] - delta[idx] + t[stage[idx]])
    nonempty = np.diff(np.append(starts, stage.size)) > 0
    out = np.zeros(starts.size)
    if nonempty.any():
        out[nonempty] = np.maximum.reduceat(peak, starts[nonempty])
    return tuple(max(0.0, float(x)) for x in out)
