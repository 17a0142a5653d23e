"""ZB-H1, the first hand-crafted zero-bubble schedule (Qi et al., *Zero Bubble
Pipeline Parallelism*, ICLR 2024, section 3.1).

Backward is split into I (gradient w.r.t. the stage input, on the critical path)
and W (gradient w.r.t. the weights, needed only by the optimizer step). Rank r:

1. w = min(p-r-1, m) warm-up forwards, as in 1F1B;
2. d = min(r, m-w) steps ``F, I`` whose W is deferred;
3. steps ``F, I, W`` while forwards remain (W of the oldest micro-batch);
4. cool-down steps ``I, W``;
5. the d deferred Ws.

Rank r therefore defers r weight passes, which fill the cool-down bubble 1F1B
leaves. With F = I = W = 1 per stage and free communication (m >= p), every rank
idles exactly p-1 = (p-1)(F+I-W) time units against 1F1B's (p-1)(F+I+W) = 3(p-1):
the idle *time* is exactly one third of 1F1B's. The bubble *fraction* is
(p-1)/(3m+p-1), which is a third of 1F1B's only in the limit m >> p, since the
makespan shrinks too.

Activation accounting: a micro-batch's activations are held from its F until its
I (which consumes them); a deferred W keeps only the layer inputs and output
gradients it needs (M_W in the paper), reported separately as pending weight
passes. The F/I pattern is 1F1B's, so the peak is min(p-r, m), the same as 1F1B.
"""

from __future__ import annotations

import numpy as np

from ringpipe.schedules.actions import KIND_CODES, Action, F, I, W, one_chunk_placement
from ringpipe.schedules.encoded import encoded_arrays
from ringpipe.schedules.generators.one_f_one_b import warmup_forwards
from ringpipe.schedules.schedule import Schedule
from ringpipe.validation import check_int


def _zb_h1_row(p: int, m: int, r: int) -> tuple[Action, ...]:
    w = warmup_forwards(p, m, r)
    deferred = min(r, m - w)
    row = [Action(r, F, k) for k in range(w)]
    forward, backward, weight = w, 0, 0
    for _ in range(deferred):
        row += (Action(r, F, forward), Action(r, I, backward))
        forward += 1
        backward += 1
    while forward < m:
        row += (Action(r, F, forward), Action(r, I, backward), Action(r, W, weight))
        forward += 1
        backward += 1
        weight += 1
    while backward < m:
        row += (Action(r, I, backward), Action(r, W, weight))
        backward += 1
        weight += 1
    row.extend(Action(r, W, k) for k in range(weight, m))
    return tuple(row)


def _zb_h1_columns(p: int, m: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    """(kind code, micro-batch) of :func:`_zb_h1_row`, as arrays. With w warm-up
    forwards, d = min(r, m-w) deferred steps and t = m-w-d full steps, the row is:
    ``F 0..w-1``; d pairs ``F(w+i) I(i)``; t triples ``F(w+d+i) I(d+i) W(i)``; w pairs
    ``I(d+t+i) W(t+i)``; then ``W(t+w+i)`` for i < d: 3m slots."""
    w = warmup_forwards(p, m, r)
    d = min(r, m - w)
    t = m - w - d
    f, i_, wc = KIND_CODES[F], KIND_CODES[I], KIND_CODES[W]
    parts = [
        (np.full((w, 1), f), np.arange(w)[:, None]),
        (np.tile([f, i_], (d, 1)), np.arange(d)[:, None] + [w, 0]),
        (np.tile([f, i_, wc], (t, 1)), np.arange(t)[:, None] + [w + d, d, 0]),
        (np.tile([i_, wc], (w, 1)), np.arange(w)[:, None] + [d + t, t]),
        (np.full((d, 1), wc), np.arange(d)[:, None] + t + w),
    ]
    return (np.concatenate([k.ravel() for k, _ in parts]).astype(np.int64),
            np.concatenate([mb.ravel() for _, mb in parts]).astype(np.int64))


def zb_h1(num_ranks: int, num_microbatches: int) -> Schedule:
    """ZB-H1 on p = ``num_ranks`` ranks (stage r on rank r) with m = ``num_microbatches``.

    Built as arrays (:func:`_zb_h1_columns`), equal to the rows of :func:`_zb_h1_row`.
    """
    p = check_int("num_ranks", num_ranks)
    m = check_int("num_microbatches", num_microbatches)
    columns = [_zb_h1_columns(p, m, r) for r in range(p)]
    placement = one_chunk_placement(p)
    encoded = encoded_arrays(np.repeat(np.arange(p), 3 * m),
                             np.concatenate([k for k, _ in columns]),
                             np.concatenate([mb for _, mb in columns]),
                             np.arange(p + 1) * (3 * m), placement, m)
    return Schedule.from_arrays("zb-h1", placement, encoded, m)
