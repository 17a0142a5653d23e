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

from .actions import Action, F, I, Schedule, W, check_count, one_chunk_placement
from .bulk import bulk_build
from .one_f_one_b import warmup_forwards


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


@bulk_build
def zb_h1(num_ranks: int, num_microbatches: int) -> Schedule:
    """ZB-H1 on p = ``num_ranks`` ranks (stage r on rank r) with m = ``num_microbatches``."""
    p = check_count("num_ranks", num_ranks)
    m = check_count("num_microbatches", num_microbatches)
    rows = tuple(_zb_h1_row(p, m, r) for r in range(p))
    return Schedule("zb-h1", one_chunk_placement(p), rows, m)
