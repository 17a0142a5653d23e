"""1F1B, also called PipeDream-flush (Narayanan et al., *PipeDream-2BW*, ICML 2021;
and SC'21, *Efficient Large-Scale Language Model Training on GPU Clusters*).

Rank r runs w = min(p-r-1, m) warm-up forwards, then m-w steady steps of one
forward and one backward (``F(w+i)``, ``B(i)``), then the w cool-down backwards.
With uniform costs and free communication its makespan equals GPipe's,
(m+p-1)(F+B), so the bubble fraction is exactly (p-1)/(m+p-1); but rank r never
holds more than w+1 = min(p-r, m) micro-batches' activations instead of m.
"""

from __future__ import annotations

import numpy as np

from ringpipe.schedules.actions import KIND_CODES, Action, B, F, one_chunk_placement
from ringpipe.schedules.encoded import encoded_arrays
from ringpipe.schedules.schedule import Schedule
from ringpipe.validation import check_int


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


def steady_state_pattern(warmup: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
    """The 1F1B slot pattern of every rank as arrays: ``(is_backward, k)``, shape (p, 2·total).

    Rank r (``warmup[r, 0]`` = w) runs forwards 0..w-1, then ``F(w+i)``, ``B(i)`` for
    i < total - w, then backwards total-w..total-1; slot j holds forward or backward
    number ``k[r, j]``. Shared by 1F1B (k is the micro-batch) and interleaved 1F1B
    (k indexes its (chunk, micro-batch) order).
    """
    slot = np.arange(2 * total, dtype=np.int64)[None, :]
    t = slot - warmup
    steady = (t >= 0) & (slot < 2 * total - warmup)
    backward = (steady & (t % 2 == 1)) | (slot >= 2 * total - warmup)
    k = np.where(slot < warmup, slot,
                 np.where(steady, np.where(backward, t // 2, warmup + t // 2), slot - total))
    return backward, k


def one_f_one_b(num_ranks: int, num_microbatches: int) -> Schedule:
    """1F1B on p = ``num_ranks`` ranks (stage r on rank r) with m = ``num_microbatches``.

    Built as arrays (:func:`steady_state_pattern`, no Action objects until ``actions``
    is read); equal to the rows of :func:`one_f_one_b_row`.
    """
    p = check_int("num_ranks", num_ranks)
    m = check_int("num_microbatches", num_microbatches)
    rank = np.arange(p, dtype=np.int64)[:, None]
    warmup = np.array([[warmup_forwards(p, m, r)] for r in range(p)], dtype=np.int64)
    backward, microbatch = steady_state_pattern(warmup, m)
    kind = np.where(backward, KIND_CODES[B], KIND_CODES[F])
    stage = np.broadcast_to(rank, (p, 2 * m))
    row_start = np.arange(p + 1, dtype=np.int64) * (2 * m)
    placement = one_chunk_placement(p)
    encoded = encoded_arrays(stage.ravel(), kind.ravel(), microbatch.ravel(), row_start,
                             placement, m)
    return Schedule.from_arrays("1f1b", placement, encoded, m)
