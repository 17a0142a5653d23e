"""GPipe: all forwards, then all backwards (Huang et al., *GPipe*, NeurIPS 2019).

Rank r runs ``F(r, 0..m-1)`` then ``B(r, 0..m-1)``. With uniform per-stage costs
F and B and free communication, the last forward ends at (m+p-1)F and the last
backward at (m+p-1)(F+B), so each rank idles (p-1)(F+B) and the bubble fraction
is exactly (p-1)/(m+p-1). Every rank holds the activations of all m micro-batches
at the turn from forward to backward.
"""

from __future__ import annotations

from .actions import Action, B, F, Schedule, check_count, one_chunk_placement
from .bulk import bulk_build


@bulk_build
def gpipe(num_ranks: int, num_microbatches: int) -> Schedule:
    """GPipe on p = ``num_ranks`` ranks (stage r on rank r) with m = ``num_microbatches``."""
    p = check_count("num_ranks", num_ranks)
    m = check_count("num_microbatches", num_microbatches)
    rows = tuple(
        tuple([Action(r, F, k) for k in range(m)] + [Action(r, B, k) for k in range(m)])
        for r in range(p)
    )
    return Schedule("gpipe", one_chunk_placement(p), rows, m)
