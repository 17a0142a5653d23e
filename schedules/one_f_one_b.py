"""1F1B, also called PipeDream-flush (Narayanan et al., *PipeDream-2BW*, ICML 2021;
and SC'21, *Efficient Large-Scale Language Model Training on GPU Clusters*).

Rank r runs w = min(p-r-1, m) warm-up forwards, then m-w steady steps of one
forward and one backward (``F(w+i)``, ``B(i)``), then the w cool-down backwards.
With uniform costs and free communication its makespan equals GPipe's,
(m+p-1)(F+B), so the bubble fraction is exactly (p-1)/(m+p-1); but rank r never
holds more than w+1 = min(p-r, m) micro-batches' activations instead of m.
"""

from __future__ import annotations

from .actions import Action, B, F, Schedule, check_count, one_chunk_placement
from .bulk import bulk_build


def warmup_forwards(num_ranks: int, num_microbatches: int, rank: int) -> int:
    """min(p-r-1, m): forwards rank r runs before its first backward."""
    return min(num_ranks - rank - 1, num_microbatches)


def one_f_one_b_row(num_ranks: int, num_microbatches: int, rank: int) -> tuple[Action, ...]:
    """Rank ``rank``'s 1F1B program (stage ``rank``)."""
    m = num_microbatches
    w = warmup_forwards(num_ranks, m, rank)
    row = [Action(rank, F, k) for k in range(w)]
    for i in range(m - w):
        row.append(Action(rank, F, w + i))
        row.append(Action(rank, B, i))
    row.extend(Action(rank, B, k) for k in range(m - w, m))
    return tuple(row)


@bulk_build
def one_f_one_b(num_ranks: int, num_microbatches: int) -> Schedule:
    """1F1B on p = ``num_ranks`` ranks (stage r on rank r) with m = ``num_microbatches``."""
    p = check_count("num_ranks", num_ranks)
    m = check_count("num_microbatches", num_microbatches)
    rows = tuple(one_f_one_b_row(p, m, r) for r in range(p))
    return Schedule("1f1b", one_chunk_placement(p), rows, m)
