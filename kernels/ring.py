"""Ring algorithms as step tables (Patarasuk and Yuan, 2009; NCCL ``all_reduce.h``).

Ranks form the ring ``r -> (r + 1) % N``.

* **Reduce-scatter**, N chunks, N-1 steps. At step s, rank r sends chunk
  ``(r - s - 1) % N`` to ``r + 1``, which reduces it. Chunk c starts on rank ``c + 1``,
  travels once around the ring, and ends fully reduced on rank c.
* **All-gather**, N chunks, N-1 steps. At step s, rank r forwards chunk ``(r - s) % N``
  to ``r + 1``, which copies it.
* **All-reduce** = reduce-scatter then all-gather: 2(N-1) steps, each moving S/N
  elements per rank. Its α-β cost is 2(N-1)α + 2(N-1)/N·S·β, bandwidth-optimal.
  Each chunk is finished on a single rank and then copied, so every rank ends with
  bitwise-identical values.
* **Broadcast / reduce** run along the chain ``root, root+1, ...`` pipelined over
  ``pipeline_chunks`` chunks: chunk k crosses hop i at step ``k + i``, so the chain
  needs ``K + N - 2`` steps.

Ring tables are built as NumPy columns, without a Python object per transfer, and
cached in bounded pools (:mod:`ringpipe.kernels.table_cache`), which refuse tables of
more than ``MAX_TRANSFERS`` transfers (ring all-reduce over more than 1448 ranks).
"""

from __future__ import annotations

import numpy as np

from ringpipe.kernels.steps import StepTable, Transfer
from ringpipe.kernels.table_cache import bounded_table_cache
from ringpipe.validation import check_int

_ADVICE_RING = ("use algorithm='tree' (O(N) transfers) for all_reduce, broadcast and "
                "reduce, or fewer in-process ranks")


def _check_nranks(nranks: int) -> int:
    return check_int("nranks", nranks, 1)


def _check_root(nranks: int, root: int) -> int:
    return check_int("root", root, 0, nranks - 1)


def _check_pipeline(pipeline_chunks: int) -> int:
    return check_int("pipeline_chunks", pipeline_chunks, 1)


def _ring_columns(n: int, first_step: int, offset: int) -> tuple[np.ndarray, ...]:
    """(step, src, dst, chunk) of N-1 ring steps: at step s rank r sends chunk
    ``(r - s + offset) % n`` to ``r + 1``; rows ordered by step, then rank."""
    s = np.repeat(np.arange(n - 1, dtype=np.int64), n)
    r = np.tile(np.arange(n, dtype=np.int64), n - 1)
    return first_step + s, r, (r + 1) % n, (r - s + offset) % n


def _ring_table(name: str, collective: str, n: int, phases: tuple[bool, ...],
                chunk_owner: tuple[int, ...] | None = None) -> StepTable:
    """Reduce-scatter (True) and/or all-gather (False) phases, one after the other."""
    cols = [_ring_columns(n, i * (n - 1), -1 if reduce else 0)
            for i, reduce in enumerate(phases)]
    reduce = np.concatenate([np.full(n * (n - 1), red, dtype=np.bool_) for red in phases])
    step, src, dst, chunk = (np.concatenate(parts) for parts in zip(*cols, strict=True))
    return StepTable.from_arrays(name, collective, n, n, step, src, dst, chunk, reduce,
                                 chunk_owner=chunk_owner)


def _square(nranks: int) -> int:
    n = _check_nranks(nranks)
    return n * (n - 1)


def _double_square(nranks: int) -> int:
    return 2 * _square(nranks)


def _chain_rows(nranks: int, root: int, pipeline_chunks: int = 1) -> int:
    n = _check_nranks(nranks)
    _check_root(n, root)
    return _check_pipeline(pipeline_chunks) * (n - 1)


@bounded_table_cache(_square, _ADVICE_RING)
def ring_reduce_scatter(nranks: int) -> StepTable:
    """Ring reduce-scatter: rank r ends with the reduced chunk r (N-1 steps)."""
    return _ring_table("ring_reduce_scatter", "reduce_scatter", nranks, (True,),
                       chunk_owner=tuple(range(nranks)))


@bounded_table_cache(_square, _ADVICE_RING)
def ring_all_gather(nranks: int) -> StepTable:
    """Ring all-gather: rank r contributes chunk r; all ranks end with all chunks."""
    return _ring_table("ring_all_gather", "all_gather", nranks, (False,),
                       chunk_owner=tuple(range(nranks)))


@bounded_table_cache(_double_square, _ADVICE_RING)
def ring_all_reduce(nranks: int) -> StepTable:
    """Ring all-reduce: reduce-scatter then all-gather, 2(N-1) steps over N chunks."""
    return _ring_table("ring_all_reduce", "all_reduce", nranks, (True, False))


def _chain(nranks: int, root: int) -> list[int]:
    return [(root + i) % nranks for i in range(nranks)]


@bounded_table_cache(_chain_rows, "use algorithm='tree' or fewer pipeline chunks")
def ring_broadcast(nranks: int, root: int, pipeline_chunks: int = 1) -> StepTable:
    """Pipelined chain broadcast from ``root`` over ``pipeline_chunks`` chunks."""
    chain = _chain(nranks, root)
    rows = [Transfer(k + i, chain[i], chain[i + 1], k, False)
            for k in range(pipeline_chunks) for i in range(nranks - 1)]
    return StepTable.from_transfers("ring_broadcast", "broadcast", nranks, pipeline_chunks,
                                    rows, root=root)


@bounded_table_cache(_chain_rows, "use algorithm='tree' or fewer pipeline chunks")
def ring_reduce(nranks: int, root: int, pipeline_chunks: int = 1) -> StepTable:
    """Pipelined chain reduce to ``root``: partial sums flow ``root-1 -> ... -> root``.

    The chain runs ``root+1, root+2, ..., root`` so the root receives last; ranks other
    than the root are left holding partial results.
    """
    chain = _chain(nranks, (root + 1) % nranks)  # ends at root
    rows = [Transfer(k + i, chain[i], chain[i + 1], k, True)
            for k in range(pipeline_chunks) for i in range(nranks - 1)]
    return StepTable.from_transfers("ring_reduce", "reduce", nranks, pipeline_chunks, rows,
                                    root=root)
