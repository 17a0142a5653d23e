"""The balanced split: per-stage layer counts that even out the work, embedding and head
included, under a memory cap.

Every transformer layer costs the same ``layer_cost`` c (forward + input gradient +
weight gradient of one micro-batch, seconds for the planner, FLOPs for an executable
plan); stage 0 also costs ``embedding_cost`` and the last stage ``head_cost`` (the logit
layer and the loss). With ``placement[s]`` the pipeline rank of stage s, the load of a
rank is the sum of its stages' costs, and in steady state every micro-batch costs each
rank its load, so the slowest rank bounds the throughput; the slowest stage bounds how
fast the pipeline fills. The split minimises, in this order:

1. the largest rank load ``E_r + c·K_r`` (``E_r`` the embedding/head cost on rank r,
   ``K_r`` its layers);
2. within each rank, the largest stage load ``e_s + c·k_s``.

Both are *water-filling* problems with identical items, solved exactly by the greedy
that gives each next layer to the rank (then the stage of that rank) whose load after
taking it is smallest, ties to the lowest index: for min-max with equal items, bounds
``lo <= k <= hi`` and any base loads, an exchange argument shows that greedy optimal.
With one stage per rank (v = 1) the two levels coincide and the split minimises the
slowest stage. Middle stages keep at least one layer; the first and last may drop to
none (they hold the embedding and the head).

**Memory cap.** ``layer_memory[s]``: bytes one more layer costs on stage s (its weights,
gradients and optimizer state, and its activations times the micro-batches stage s holds
at once under the schedule); ``fixed_memory[r]``: bytes rank r holds whatever the split
(embedding and head states, logits, buffers, reserve). Rank r then takes at most
``(memory_cap - fixed_memory[r]) / max_s layer_memory[s]`` layers beyond its minimum, the
largest per-layer cost among its stages (exact for v = 1, conservative for v > 1).
ValueError when the layers cannot fit.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from numbers import Real

from ringpipe.validation import check_int, check_real

__all__ = ["balanced_counts", "water_fill"]


def water_fill(base: Sequence[float], lo: Sequence[int], hi: Sequence[int], unit: float,
               total: int) -> list[int]:
    """Counts ``k`` with ``lo <= k <= hi`` and ``sum(k) == total`` minimising
    ``max(base[i] + unit·k[i])`` (the greedy of the module docstring); ValueError when
    ``sum(lo) > total`` or ``sum(hi) < total``."""
    counts = list(lo)
    left = total - sum(counts)
    if left < 0:
        raise ValueError(f"balanced split: the stages need at least {sum(counts)} layers, "
                         f"the model has {total}")
    if sum(hi) < total:
        raise ValueError(f"balanced split: at most {sum(hi)} of the {total} layers fit in "
                         "memory")
    heap = [(base[i] + unit * (counts[i] + 1), i) for i in range(len(counts))
            if counts[i] < hi[i]]
    heapq.heapify(heap)
    while left:
        _, i = heapq.heappop(heap)
        counts[i] += 1
        left -= 1
        if counts[i] < hi[i]:
            heapq.heappush(heap, (base[i] + unit * (counts[i] + 1), i))
    return counts


def _per(name: str, value: Real | Sequence[Real], n: int) -> list[float]:
    values = list(value) if isinstance(value, Sequence) else [value] * n
    if len(values) != n:
        raise ValueError(f"{name}: got {len(values)} entries, need {n}")
    return [float(check_real(f"{name}[{i}]", v, 0.0)) for i, v in enumerate(values)]


def balanced_counts(layers: int, num_stages: int, *, layer_cost: float,
                    embedding_cost: float = 0.0, head_cost: float = 0.0,
                    placement: Sequence[int] | None = None,
                    layer_memory: Real | Sequence[Real] = 0.0,
                    fixed_memory: Real | Sequence[Real] = 0.0,
                    memory_cap: float | None = None) -> tuple[int, ...]:
    """Layers per stage of the balanced split (module docstring)."""
    layers = check_int("layers", layers)
    stages = check_int("num_stages", num_stages)
    unit = float(check_real("layer_cost", layer_cost, 0.0))
    extra = [0.0] * stages
    extra[0] += float(check_real("embedding_cost", embedding_cost, 0.0))
    extra[-1] += float(check_real("head_cost", head_cost, 0.0))
    place = list(range(stages)) if placement is None else list(placement)
    if len(place) != stages:
        raise ValueError(f"placement: {len(place)} entries for {stages} stages")
    ranks = max(place) + 1
    if sorted(set(place)) != list(range(ranks)):
        raise ValueError(f"placement {place}: ranks must be 0..p-1, each holding a stage")
    lo = [1 if 0 < s < stages - 1 else 0 for s in range(stages)] if stages > 1 else [1]
    mine = [[s for s in range(stages) if place[s] == r] for r in range(ranks)]
    per_layer = _per("layer_memory", layer_memory, stages)
    fixed = _per("fixed_memory", fixed_memory, ranks)
    rank_hi = []
    for r, own in enumerate(mine):
        floor_layers = sum(lo[s] for s in own)
        if memory_cap is None:
            rank_hi.append(layers)
            continue
        cap = float(check_real("memory_cap", memory_cap, 0.0))
        used = fixed[r] + sum(lo[s] * per_layer[s] for s in own)
        worst = max(per_layer[s] for s in own)
        if used > cap:
            raise ValueError(f"balanced split: pipeline rank {r} needs {used:.4g} bytes with "
                             f"its fewest layers, over the cap of {cap:.4g}")
        room = layers if worst == 0 else math.floor((cap - used) / worst)
        rank_hi.append(floor_layers + min(room, layers))
    totals = water_fill([sum(extra[s] for s in own) for own in mine],
                        [sum(lo[s] for s in own) for own in mine], rank_hi, unit, layers)
    counts = [0] * stages
    for own, total in zip(mine, totals, strict=True):
        split = water_fill([extra[s] for s in own], [lo[s] for s in own], [total] * len(own),
                           unit, total)
        for s, k in zip(own, split, strict=True):
            counts[s] = k
    return tuple(counts)
