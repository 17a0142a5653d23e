"""Interleaved 1F1B, Megatron's virtual pipeline (Narayanan et al., SC'21, section 2.2.2).

Each of the p ranks holds v >= 2 model chunks; stage s = c*p + r (chunk c) lives
on rank ``s % p``. Micro-batches move through the chunks in groups of p: the k-th
forward a rank runs is for chunk ``(k // p) % v`` and micro-batch
``(k // (p*v)) * p + k % p``; backwards visit the chunks in reverse order
(chunk ``v-1 - (k // p) % v``). Rank r runs

    warm-up = min((p-r-1)*2 + (v-1)*p, m*v)

forwards, then alternates one forward and one backward, then cools down. Each
chunk costs 1/v of a full stage, so the pipeline fills v times faster: with
uniform costs and free communication the bubble fraction is exactly
(p-1)/(v*m+p-1). Megatron requires m to be a multiple of p, which keeps every
group of p micro-batches whole; the generator enforces the same constraint.
"""

from __future__ import annotations

import numpy as np

from ringpipe.schedules.actions import KIND_CODES, Action, B, F, interleaved_placement
from ringpipe.schedules.encoded import encoded_arrays
from ringpipe.schedules.generators.one_f_one_b import steady_state_pattern
from ringpipe.schedules.schedule import Schedule
from ringpipe.validation import check_int


def interleaved_warmup(num_ranks: int, num_microbatches: int, chunks: int, rank: int) -> int:
    """Megatron's warm-up count: (p-r-1)*2 + (v-1)*p, capped at m*v."""
    return min((num_ranks - rank - 1) * 2 + (chunks - 1) * num_ranks, num_microbatches * chunks)


def _interleaved_row(p: int, m: int, v: int, r: int) -> tuple[Action, ...]:
    total = m * v
    group = p * v

    def forward(k: int) -> Action:
        return Action(((k % group) // p) * p + r, F, (k // group) * p + k % p)

    def backward(k: int) -> Action:
        return Action((v - 1 - (k % group) // p) * p + r, B, (k // group) * p + k % p)

    w = interleaved_warmup(p, m, v, r)
    row = [forward(k) for k in range(w)]
    for i in range(total - w):
        row.append(forward(w + i))
        row.append(backward(i))
    row.extend(backward(k) for k in range(total - w, total))
    return tuple(row)


def interleaved_one_f_one_b(
    num_ranks: int, num_microbatches: int, chunks_per_rank: int = 2
) -> Schedule:
    """Interleaved 1F1B with v = ``chunks_per_rank`` chunks per rank.

    Constraints (Megatron's): v >= 2 (v = 1 is plain 1F1B) and m a multiple of p.
    Built as arrays (the 1F1B pattern of
    :func:`~ringpipe.schedules.generators.one_f_one_b.steady_state_pattern` over m·v forwards,
    mapped to (stage, micro-batch) as :func:`_interleaved_row` does).
    """
    p = check_int("num_ranks", num_ranks)
    m = check_int("num_microbatches", num_microbatches)
    v = check_int("chunks_per_rank", chunks_per_rank)
    if v < 2:
        raise ValueError(
            f"chunks_per_rank: interleaved 1F1B needs v >= 2 chunks per rank, got {v} "
            "(v = 1 is plain 1F1B)"
        )
    if m % p:
        raise ValueError(
            f"num_microbatches: interleaved 1F1B needs m to be a multiple of p = {p} "
            f"(micro-batches move through the chunks in groups of p), got m = {m}"
        )
    rank = np.arange(p, dtype=np.int64)[:, None]
    warmup = np.array([[interleaved_warmup(p, m, v, r)] for r in range(p)], dtype=np.int64)
    backward, k = steady_state_pattern(warmup, m * v)
    chunk = (k % (p * v)) // p
    stage = np.where(backward, v - 1 - chunk, chunk) * p + rank
    microbatch = (k // (p * v)) * p + k % p
    kind = np.where(backward, KIND_CODES[B], KIND_CODES[F])
    placement = interleaved_placement(p, v)
    encoded = encoded_arrays(stage.ravel(), kind.ravel(), microbatch.ravel(),
                             np.arange(p + 1, dtype=np.int64) * (2 * m * v), placement, m)
    return Schedule.from_arrays("interleaved-1f1b", placement, encoded, m)
