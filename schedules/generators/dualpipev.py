"""DualPipeV: DualPipe's bidirectional schedule folded onto a V (DeepSeek-AI, DeepSeek-V3
technical report, arXiv 2412.19437, 2024, §3.2.1; deepseek-ai/DualPipe's ``DualPipeV``),
in the per-rank order of PyTorch's ``ScheduleDualPipeV`` (torch.distributed.pipelining).

Rank r of p holds stages ``a = r`` and ``b = 2p-1-r`` (the V of ZB-V), and m >= 2p
micro-batches (PyTorch's constraint: at least as many as stages). Each stage counts its
forwards and its backwards separately (a full backward B and an input-gradient pass I
share one count; the k-th of either is micro-batch k); W passes are queued when their I
runs and taken oldest first. Rank r's program, in eight phases (``F_a`` = the next
forward of stage a, ``(F_a;B_b)`` an overlapped pair,
:func:`~ringpipe.schedules.actions.overlap_f_b`):

1. ``2(p-r-1)`` × ``F_a``;
2. ``r+1`` × ``F_a F_b``;
3. ``p-r-1`` × ``I_b``, the oldest queued W, ``F_b`` (zero-bubble warm-up);
4. ``m-2p+r+1`` × ``(F_a;B_b) (F_b;B_a)``, the steady state, except that the last rank
   runs its first ``(F_a;B_b)`` as two plain actions (it has nothing to overlap yet);
5. ``p-r-1`` × ``B_b (F_b;B_a)``;
6. ``r+1`` × ``X_b X_a``, X a full backward until the middle step (step ``(r+1)//2``),
   from which on it is an input-gradient pass I (for odd r from ``X_b`` of that step,
   for even r from its ``X_a``);
7. ``p-r-1`` × the oldest queued W, then ``X_a``;
8. ``r+1`` × the oldest queued W (none once the queue is empty).

The order is PyTorch's, checked against ``ScheduleDualPipeV`` itself for every p <= 8 and
m >= 2p in ``tests/schedules/test_dualpipev.py``; the code is written from the phase
description above. Like every schedule it is then lowered with
:func:`~ringpipe.schedules.add_communication` (both inputs of a pair received before
it, both outputs sent after it), validated, simulated and run.
"""

from __future__ import annotations

from collections import deque

from ringpipe.schedules.actions import Action, B, F, I, W, overlap_f_b, v_shape_placement
from ringpipe.schedules.encoded import encode_rows
from ringpipe.schedules.schedule import Schedule
from ringpipe.validation import check_int

__all__ = ["dualpipev", "dualpipev_row"]


class _Rank:
    """Rank r's counters and W queue while its program is written."""

    def __init__(self, num_ranks: int, rank: int) -> None:
        self.a, self.b = rank, 2 * num_ranks - 1 - rank
        self.forwards = {self.a: 0, self.b: 0}
        self.backwards = {self.a: 0, self.b: 0}
        self.weights: deque[Action] = deque()
        self.row: list[Action] = []

    def forward(self, stage: int) -> Action:
        action = Action(stage, F, self.forwards[stage])
        self.forwards[stage] += 1
        return action

    def backward(self, stage: int, split: bool = False) -> Action:
        action = Action(stage, I if split else B, self.backwards[stage])
        self.backwards[stage] += 1
        if split:
            self.weights.append(Action(stage, W, action.microbatch))
        return action

    def add(self, *actions: Action) -> None:
        self.row.extend(actions)

    def weight(self) -> None:
        if self.weights:
            self.row.append(self.weights.popleft())


def dualpipev_row(num_ranks: int, num_microbatches: int, rank: int) -> tuple[Action, ...]:
    """Rank ``rank``'s DualPipeV program (module docstring); no argument checks."""
    p, m, r = num_ranks, num_microbatches, rank
    k = _Rank(p, r)
    a, b = k.a, k.b
    for _ in range(2 * (p - r - 1)):
        k.add(k.forward(a))
    for _ in range(r + 1):
        k.add(k.forward(a), k.forward(b))
    for _ in range(p - r - 1):
        k.add(k.backward(b, split=True))
        k.weight()
        k.add(k.forward(b))
    for i in range(m - 2 * p + r + 1):
        if i == 0 and r == p - 1:
            k.add(k.forward(a), k.backward(b))
        else:
            k.add(overlap_f_b(k.forward(a), k.backward(b)))
        k.add(overlap_f_b(k.forward(b), k.backward(a)))
    for _ in range(p - r - 1):
        k.add(k.backward(b))
        k.add(overlap_f_b(k.forward(b), k.backward(a)))
    split = False
    for i in range(r + 1):
        split = split or (i == (r + 1) // 2 and r % 2 == 1)
        k.add(k.backward(b, split))
        split = split or (i == (r + 1) // 2 and r % 2 == 0)
        k.add(k.backward(a, split))
    for _ in range(p - r - 1):
        k.weight()
        k.add(k.backward(a, split))
    for _ in range(r + 1):
        k.weight()
    return tuple(k.row)


def dualpipev(num_ranks: int, num_microbatches: int) -> Schedule:
    """DualPipeV on p = ``num_ranks`` ranks, 2 stages each in a V, m =
    ``num_microbatches`` >= 2p (module docstring)."""
    p = check_int("num_ranks", num_ranks)
    m = check_int("num_microbatches", num_microbatches)
    if m < 2 * p:
        raise ValueError(f"num_microbatches: DualPipeV needs at least as many micro-batches as "
                         f"stages, m >= 2p = {2 * p}, got m = {m} (PyTorch's constraint)")
    rows = tuple(dualpipev_row(p, m, r) for r in range(p))
    placement = v_shape_placement(p)
    return Schedule.from_arrays("dualpipev", placement, encode_rows(rows, placement, m), m)
