"""Point-to-point exchanges as step tables: the all-to-all and the ring pass.

**All-to-all, pairwise exchange** (MPICH's ``MPIR_Alltoall_intra_pairwise``; the
``alltoall`` of nccl-tests moves the same data). Rank r holds N blocks, block j meant
for rank j; afterwards rank r holds N blocks, block i the one rank i meant for it.
The step-table IR has one chunk numbering for every rank, so the table works on an
N²-chunk *work buffer* per rank: chunk ``i·N + j`` (:func:`all_to_all_chunk`) is "the
block rank i sends to rank j". Rank r starts with its N blocks in its row, chunks
``r·N .. r·N + N-1`` (its own block ``r·N + r`` never moves), and at step s = 0 .. N-2
sends chunk ``r·N + (r + s + 1) mod N`` to rank ``(r + s + 1) mod N``, which copies it.
Afterwards rank r's column, chunks ``i·N + r``, is its result. Every rank sends and
receives one block per step (a permutation per step: no link carries two messages),
N-1 steps, and each rank sends (N-1)/N of its S bytes: the α-β cost is
(N-1)·α + (N-1)/N·S·β, the bound for a direct all-to-all (nccl-tests
``doc/PERFORMANCE.md``: busbw = algbw·(N-1)/N).

**Ring pass** (ring attention's K/V rotation: Liu et al. 2023, "Ring Attention with
Blockwise Transformers"; Megatron-core / Transformer Engine context parallelism).
Rank r's block is chunk r. At step s rank r sends the block it holds, chunk
``(r - s) mod N``, to rank ``r + 1``: the ring all-gather's schedule
(:func:`ringpipe.kernels.ring.ring_all_gather`), so after step s rank r holds block
``(r - s - 1) mod N``. ``steps = N - 1`` shows every rank every block (the forward);
``steps = N`` makes one more hop, which brings each block, with the gradient
accumulated along the way, home to its owner (the backward's dK/dV).
"""

from __future__ import annotations

import numpy as np

from ringpipe.kernels.steps import StepTable
from ringpipe.kernels.table_cache import bounded_table_cache
from ringpipe.validation import check_int

__all__ = ["all_to_all_chunk", "pairwise_all_to_all", "ring_pass", "ring_pass_block"]


def all_to_all_chunk(src: int, dst: int, nranks: int) -> int:
    """The work-buffer chunk holding the block rank ``src`` sends to rank ``dst``."""
    return src * nranks + dst


def _pairs(nranks: int) -> int:
    n = check_int("nranks", nranks, 1)
    return n * (n - 1)


@bounded_table_cache(_pairs, "use fewer in-process ranks")
def pairwise_all_to_all(nranks: int) -> StepTable:
    """The pairwise-exchange all-to-all over N² work-buffer chunks (module docstring)."""
    n = nranks
    s = np.repeat(np.arange(n - 1, dtype=np.int64), n)
    r = np.tile(np.arange(n, dtype=np.int64), n - 1)
    dst = (r + s + 1) % n
    return StepTable.from_arrays("pairwise_all_to_all", "all_to_all", n, n * n, s, r, dst,
                                 r * n + dst, np.zeros(s.size, dtype=np.bool_))


def _pass_rows(nranks: int, steps: int) -> int:
    n = check_int("nranks", nranks, 1)
    check_int("steps", steps, 0, n)
    return n * steps if n > 1 else 0


@bounded_table_cache(_pass_rows, "use a smaller ring")
def ring_pass(nranks: int, steps: int) -> StepTable:
    """The ring pass of ``steps`` steps (0 .. N) over N ranks (module docstring)."""
    n = nranks
    if n == 1:
        steps = 0
    s = np.repeat(np.arange(steps, dtype=np.int64), n)
    r = np.tile(np.arange(n, dtype=np.int64), steps)
    return StepTable.from_arrays(f"ring_pass_{steps}", "ring_pass", n, n, s, r, (r + 1) % n,
                                 (r - s) % n, np.zeros(s.size, dtype=np.bool_))


def ring_pass_block(rank: int, step: int, nranks: int) -> int:
    """The block rank ``rank`` holds before step ``step`` of the ring pass (its own,
    block ``rank``, before step 0)."""
    return (rank - step) % nranks
