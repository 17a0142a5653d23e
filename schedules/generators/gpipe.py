"""GPipe: all forwards, then all backwards (Huang et al., *GPipe*, NeurIPS 2019).

Rank r runs ``F(r, 0..m-1)`` then ``B(r, 0..m-1)``. With uniform per-stage costs
F and B and free communication, the last forward ends at (m+p-1)F and the last
backward at (m+p-1)(F+B), so each rank idles (p-1)(F+B) and the bubble fraction
is exactly (p-1)/(m+p-1). Every rank holds the activations of all m micro-batches
at the turn from forward to backward.
"""

from __future__ import annotations

import numpy as np

from ringpipe.schedules.actions import KIND_CODES, B, F, one_chunk_placement
from ringpipe.schedules.encoded import encoded_arrays
from ringpipe.schedules.schedule import Schedule
from ringpipe.validation import check_int


def gpipe(num_ranks: int, num_microbatches: int) -> Schedule:
    """GPipe on p = ``num_ranks`` ranks (stage r on rank r) with m = ``num_microbatches``.

    Built as arrays: rank r's slot j is ``F j`` for j < m and ``B (j - m)`` after.
    """
    p = check_int("num_ranks", num_ranks)
    m = check_int("num_microbatches", num_microbatches)
    slot = np.arange(2 * m, dtype=np.int64)
    row_kind = np.where(slot < m, KIND_CODES[F], KIND_CODES[B])
    stage = np.repeat(np.arange(p, dtype=np.int64), 2 * m)
    placement = one_chunk_placement(p)
    encoded = encoded_arrays(stage, np.tile(row_kind, p), np.tile(slot % m, p),
                             np.arange(p + 1, dtype=np.int64) * (2 * m), placement, m)
    return Schedule.from_arrays("gpipe", placement, encoded, m)
