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
"""

from __future__ import annotations

from functools import cache

from ringpipe.kernels.steps import StepTable, Transfer


def _check_nranks(nranks: int) -> None:
    if not isinstance(nranks, int) or isinstance(nranks, bool) or nranks < 1:
        raise ValueError(f"nranks must be an int >= 1, got {nranks!r}")


def _check_root(nranks: int, root: int) -> None:
    if not 0 <= root < nranks:
        raise ValueError(f"root {root} out of range for {nranks} ranks")


def _check_pipeline(pipeline_chunks: int) -> None:
    if pipeline_chunks < 1:
        raise ValueError(f"pipeline_chunks must be >= 1, got {pipeline_chunks}")


def _reduce_scatter_rows(n: int, first_step: int) -> list[Transfer]:
    return [Transfer(first_step + s, r, (r + 1) % n, (r - s - 1) % n, True)
            for s in range(n - 1) for r in range(n)]


def _all_gather_rows(n: int, first_step: int) -> list[Transfer]:
    return [Transfer(first_step + s, r, (r + 1) % n, (r - s) % n, False)
            for s in range(n - 1) for r in range(n)]


@cache
def ring_reduce_scatter(nranks: int) -> StepTable:
    """Ring reduce-scatter: rank r ends with the reduced chunk r (N-1 steps)."""
    _check_nranks(nranks)
    return StepTable.from_transfers("ring_reduce_scatter", "reduce_scatter", nranks, nranks,
                                    _reduce_scatter_rows(nranks, 0),
                                    chunk_owner=tuple(range(nranks)))


@cache
def ring_all_gather(nranks: int) -> StepTable:
    """Ring all-gather: rank r contributes chunk r; all ranks end with all chunks."""
    _check_nranks(nranks)
    return StepTable.from_transfers("ring_all_gather", "all_gather", nranks, nranks,
                                    _all_gather_rows(nranks, 0),
                                    chunk_owner=tuple(range(nranks)))


@cache
def ring_all_reduce(nranks: int) -> StepTable:
    """Ring all-reduce: reduce-scatter then all-gather, 2(N-1) steps over N chunks."""
    _check_nranks(nranks)
    rows = _reduce_scatter_rows(nranks, 0) + _all_gather_rows(nranks, nranks - 1)
    return StepTable.from_transfers("ring_all_reduce", "all_reduce", nranks, nranks, rows)


def _chain(nranks: int, root: int) -> list[int]:
    return [(root + i) % nranks for i in range(nranks)]


@cache
def ring_broadcast(nranks: int, root: int, pipeline_chunks: int = 1) -> StepTable:
    """Pipelined chain broadcast from ``root`` over ``pipeline_chunks`` chunks."""
    _check_nranks(nranks)
    _check_root(nranks, root)
    _check_pipeline(pipeline_chunks)
    chain = _chain(nranks, root)
    rows = [Transfer(k + i, chain[i], chain[i + 1], k, False)
            for k in range(pipeline_chunks) for i in range(nranks - 1)]
    return StepTable.from_transfers("ring_broadcast", "broadcast", nranks, pipeline_chunks,
                                    rows, root=root)


@cache
def ring_reduce(nranks: int, root: int, pipeline_chunks: int = 1) -> StepTable:
    """Pipelined chain reduce to ``root``: partial sums flow ``root-1 -> ... -> root``.

    The chain runs ``root+1, root+2, ..., root`` so the root receives last; ranks other
    than the root are left holding partial results.
    """
    _check_nranks(nranks)
    _check_root(nranks, root)
    _check_pipeline(pipeline_chunks)
    chain = _chain(nranks, (root + 1) % nranks)  # ends at root
    rows = [Transfer(k + i, chain[i], chain[i + 1], k, True)
            for k in range(pipeline_chunks) for i in range(nranks - 1)]
    return StepTable.from_transfers("ring_reduce", "reduce", nranks, pipeline_chunks, rows,
                                    root=root)
