"""ZB-V: zero-bubble scheduling on a V-shaped placement (Qi et al., *Zero Bubble
Pipeline Parallelism*, ICLR 2024, section 6; the V-shaped building blocks and
their memory are analysed in Qi et al., *Pipeline Parallelism with Controllable
Memory*, NeurIPS 2024).

**Placement.** The model is cut into 2p chunks; rank r holds chunk-stages
``a = r`` and ``b = 2p-1-r`` (:func:`~ringpipe.schedules.actions.v_shape_placement`),
so a micro-batch runs down the ranks (stages 0..p-1), turns on rank p-1 (stages
p-1 and p share it, handing over locally) and comes back up (stages p..2p-1);
rank 0 holds both the first and the last stage.

**Order.** Backward is split into I (input gradient, on the critical path) and W
(weight gradient, deferrable). Each (chunk, kind) stream on a rank runs its
micro-batches in order 0, 1, 2, ..., so a rank's program is a word over the six
symbols ``Fa Ia Wa Fb Ib Wb``; the k-th occurrence of a symbol is micro-batch k.
With n = max(m, 2p-1), rank r runs

    Fa^(2p-2r-1) (Fb Fa)^r (Fb Ib Wb)^(p-r)                        warm-up
    (Fa Ia Wa Fb Ib Wb)^(n-2p+r+1) (Ia Wa Fb Ib Wb)^(p-r-1)        steady
    (Ia Ib)^r (Ia Wa)^(p-r) Wb^r Wa^r                              cool-down

(each symbol occurs n times), then drops the micro-batches >= m, which keeps
every dependency and the relative order of the rest. This is the fixed pattern
of PyTorch's ``ScheduleZBVZeroBubble`` (``torch.distributed.pipelining``), built
for F = I = W; the paper also builds ZB-V for unequal costs by a greedy search,
which is not reproduced here.
Cool-down defers 2r weight passes to the end, where they fill the drain bubble,
as ZB-H1's r deferred passes do.

**Bubble.** Count time in ticks of one chunk action (F = I = W = 1/2 of a full
stage's pass each). A rank does 6m ticks of work, and rank p-1 cannot start
before tick p-1 (stage p-1 needs the forwards of stages 0..p-2 first), so every
V-shaped schedule has makespan >= 6m + p-1 ticks and bubble fraction
>= (p-1)/(6m+p-1). This order attains the bound once m >= floor(3p/2): every
rank idles exactly p-1 ticks (rank r: r before its first forward, p-1-r later)
and all finish at tick 6m+p-1, so

    bubble = (p-1) / (6m + p - 1),

half of ZB-H1's (p-1)/(3m+p-1) and about a sixth of 1F1B's: only the
unavoidable fill is left, and it vanishes as m/p grows.
The tests check this exactly (Fractions) for every p <= 16 and m <= 48 with
m >= floor(3p/2) (measured: the first m from which it always holds), and that for
smaller m the bubble is still never worse than ZB-H1's.

**Memory.** A micro-batch's activations are held from F to I, per chunk, so
:func:`~ringpipe.schedules.simulate.simulate` counts them in *chunk* units: half
of a 1F1B stage's. ZB-V's peak is 2p chunk units on every rank once m >= 2p-1
(2p forwards of ``a`` and ``b`` run before the first I), and at most 2*min(p, m)
in general: the peak of 1F1B's busiest rank, min(p, m) stages, in the same units.
So ZB-V needs no more activation memory than 1F1B, the paper's claim; the
comparison is against 1F1B's peak, rank 0's, not rank by rank, because a V
balances memory: 1F1B's last rank holds one micro-batch, while the V's last
rank must hold a micro-batch from its forward until its gradient has been round
all the other ranks.
"""

from __future__ import annotations

import numpy as np

from ringpipe.schedules.actions import KIND_CODES, Action, F, I, W, v_shape_placement
from ringpipe.schedules.encoded import encoded_arrays
from ringpipe.schedules.schedule import Schedule
from ringpipe.validation import check_int

_FA, _IA, _WA, _FB, _IB, _WB = range(6)
_SYMBOL = ((0, F), (0, I), (0, W), (1, F), (1, I), (1, W))  # (chunk, kind)


def zb_v_pattern(num_ranks: int, num_microbatches: int, rank: int) -> list[int]:
    """Rank ``rank``'s program as symbol codes (Fa Ia Wa Fb Ib Wb = 0..5), before
    dropping padded micro-batches; see the module docstring for the word."""
    p, r = num_ranks, rank
    n = max(num_microbatches, 2 * p - 1)
    return (
        [_FA] * (2 * p - 2 * r - 1)
        + [_FB, _FA] * r
        + [_FB, _IB, _WB] * (p - r)
        + [_FA, _IA, _WA, _FB, _IB, _WB] * (n - 2 * p + r + 1)
        + [_IA, _WA, _FB, _IB, _WB] * (p - r - 1)
        + [_IA, _IB] * r
        + [_IA, _WA] * (p - r)
        + [_WB] * r
        + [_WA] * r
    )


def _zb_v_row(p: int, m: int, r: int) -> tuple[Action, ...]:
    stages = (r, 2 * p - 1 - r)
    seen = [0] * 6
    row = []
    for symbol in zb_v_pattern(p, m, r):
        mb = seen[symbol]
        seen[symbol] += 1
        if mb < m:
            chunk, kind = _SYMBOL[symbol]
            row.append(Action(stages[chunk], kind, mb))
    return tuple(row)


def _zb_v_columns(p: int, m: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stage, kind code, micro-batch) of :func:`_zb_v_row`, as arrays: the k-th
    occurrence of a symbol is micro-batch k, and occurrences k >= m are dropped."""
    symbol = np.array(zb_v_pattern(p, m, r), dtype=np.int64)
    microbatch = np.empty_like(symbol)
    for code in range(len(_SYMBOL)):
        where = np.flatnonzero(symbol == code)
        microbatch[where] = np.arange(where.size)
    keep = microbatch < m
    stages = np.array([r if chunk == 0 else 2 * p - 1 - r for chunk, _ in _SYMBOL])
    kinds = np.array([KIND_CODES[kind] for _, kind in _SYMBOL])
    symbol = symbol[keep]
    return stages[symbol], kinds[symbol], microbatch[keep]


def zb_v(num_ranks: int, num_microbatches: int) -> Schedule:
    """ZB-V on p = ``num_ranks`` ranks, 2 chunks each in a V, m = ``num_microbatches``.

    Valid for every p >= 1 and m >= 1; with F = I = W per chunk the bubble is the
    minimum a V allows, (p-1)/(6m+p-1), once m >= floor(3p/2) (module docstring).
    Built as arrays (:func:`_zb_v_columns`), equal to the rows of :func:`_zb_v_row`.
    """
    p = check_int("num_ranks", num_ranks)
    m = check_int("num_microbatches", num_microbatches)
    columns = [_zb_v_columns(p, m, r) for r in range(p)]
    row_start = np.zeros(p + 1, dtype=np.int64)
    np.cumsum([c[0].size for c in columns], out=row_start[1:])
    placement = v_shape_placement(p)
    encoded = encoded_arrays(*(np.concatenate(parts) for parts in zip(*columns, strict=True)),
                             row_start, placement, m)
    return Schedule.from_arrays("zb-v", placement, encoded, m)
