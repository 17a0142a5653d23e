"""The step-table IR: a collective algorithm written down once, as data.

A buffer of ``count`` elements is cut into ``nchunks`` contiguous chunks by
:func:`chunk_bounds`. A :class:`StepTable` is an ordered list of *transfers*; each
transfer says that at logical step ``step`` rank ``src`` sends chunk ``chunk`` to rank
``dst``, and that the receiver either **reduces** it into its own copy
(``dst[c] = op(dst[c], src[c])``) or **copies** it (``dst[c] = src[c]``).

Execution semantics, which every executor (NumPy, Numba, CUDA, MPI) honours:

* Steps run in increasing order. Within a step, transfers into the same ``(dst, chunk)``
  are applied in table order; that fixes every element's reduction order, so two
  executors of one table agree bit for bit.
* No ``(rank, chunk)`` is both read and written in the same step (checked by
  :meth:`StepTable.check`), so all transfers of a step may run concurrently, which is
  what the MPI runtime and the cost model assume.
* Chunks are disjoint element ranges, so transfers on different chunks commute. The
  tile-fused executors use this: they run each chunk's transfers in table order, one
  cache-sized tile at a time, without changing any element's reduction order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np

#: Collectives a table can implement.
COLLECTIVES = ("all_reduce", "reduce_scatter", "all_gather", "broadcast", "reduce",
               "all_to_all", "ring_pass")


def chunk_bounds(count: int, nchunks: int) -> np.ndarray:
    """Boundaries of ``nchunks`` near-equal contiguous chunks of ``count`` elements.

    Returns ``b`` of length ``nchunks + 1`` with chunk ``c`` = ``[b[c], b[c+1])``. The first
    ``count % nchunks`` chunks hold one element more than the rest, so sizes that
    ``nchunks`` does not divide, sizes below ``nchunks`` (some chunks are empty) and 0
    are all exact: nothing is padded or dropped.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if nchunks < 1:
        raise ValueError(f"nchunks must be >= 1, got {nchunks}")
    base, extra = divmod(count, nchunks)
    sizes = np.full(nchunks, base, dtype=np.int64)
    sizes[:extra] += 1
    bounds = np.zeros(nchunks + 1, dtype=np.int64)
    np.cumsum(sizes, out=bounds[1:])
    return bounds


class Transfer(NamedTuple):
    """One row of a step table."""

    step: int
    src: int
    dst: int
    chunk: int
    reduce: bool


@dataclass(frozen=True, eq=False)
class StepTable:
    """An immutable collective algorithm: transfers sorted by step.

    Attributes:
        name: what it is, e.g. ``"ring_all_reduce"``.
        collective: one of :data:`COLLECTIVES`.
        nranks: number of ranks N.
        nchunks: how many chunks the buffer is cut into (see :func:`chunk_bounds`).
        step, src, dst, chunk: int64 arrays, one entry per transfer.
        reduce: bool array; True reduces into the receiver, False copies.
        root: the root rank of broadcast/reduce, else None.
        chunk_owner: for reduce_scatter and all_gather, the rank whose chunk each chunk is
            (chunk ``c`` of rank ``chunk_owner[c]`` is that rank's result / contribution).
    """

    name: str
    collective: str
    nranks: int
    nchunks: int
    step: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    chunk: np.ndarray
    reduce: np.ndarray
    root: int | None = None
    chunk_owner: tuple[int, ...] | None = field(default=None)

    @classmethod
    def from_transfers(
        cls,
        name: str,
        collective: str,
        nranks: int,
        nchunks: int,
        transfers: list[Transfer],
        root: int | None = None,
        chunk_owner: tuple[int, ...] | None = None,
    ) -> StepTable:
        """Build a table from transfers; sorts stably by step, freezes and checks it."""
        rows = sorted(transfers, key=lambda t: t.step)  # stable: keeps in-step order
        cols = [np.array([getattr(t, f) for t in rows], dtype=np.int64) for f in
                ("step", "src", "dst", "chunk")]
        red = np.array([t.reduce for t in rows], dtype=np.bool_)
        return cls.from_arrays(name, collective, nranks, nchunks, *cols, red, root=root,
                               chunk_owner=chunk_owner)

    @classmethod
    def from_arrays(
        cls, name: str, collective: str, nranks: int, nchunks: int, step: np.ndarray,
        src: np.ndarray, dst: np.ndarray, chunk: np.ndarray, reduce: np.ndarray,
        root: int | None = None, chunk_owner: tuple[int, ...] | None = None,
    ) -> StepTable:
        """Build a table from parallel columns, one entry per transfer (no Python objects).

        Sorts stably by step, freezes read-only copies and checks the table; O(T log T)
        for T transfers, in NumPy.
        """
        step = np.asarray(step, dtype=np.int64)
        order = (slice(None) if np.all(step[1:] >= step[:-1]) else
                 np.argsort(step, kind="stable"))
        cols = [np.array(np.asarray(c, dtype=np.int64)[order])
                for c in (step, src, dst, chunk)]
        red = np.array(np.asarray(reduce, dtype=np.bool_)[order])
        for arr in (*cols, red):
            arr.flags.writeable = False
        table = cls(name, collective, nranks, nchunks, *cols, red, root, chunk_owner)
        table.check()
        return table

    def __len__(self) -> int:
        return int(self.step.size)

    def __iter__(self):  # noqa: ANN204 - iterator of Transfer
        for i in range(len(self)):
            yield Transfer(int(self.step[i]), int(self.src[i]), int(self.dst[i]),
                           int(self.chunk[i]), bool(self.reduce[i]))

    @property
    def nsteps(self) -> int:
        """Number of logical steps (0 for a table with no transfers)."""
        return int(self.step[-1]) + 1 if len(self) else 0

    def steps(self) -> list[list[Transfer]]:
        """Transfers grouped by step, in table order."""
        grouped: list[list[Transfer]] = [[] for _ in range(self.nsteps)]
        for t in self:
            grouped[t.step].append(t)
        return grouped

    @cached_property
    def by_chunk(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The transfers regrouped per chunk (CSR form), keeping table order in a chunk.

        Returns ``(ptr, src, dst, reduce)``: chunk ``c``'s transfers are rows
        ``ptr[c]:ptr[c+1]``. Valid because chunks are disjoint (see module docstring).
        """
        order = np.argsort(self.chunk, kind="stable")
        ptr = np.searchsorted(self.chunk[order], np.arange(self.nchunks + 1)).astype(np.int64)
        out = (ptr, np.ascontiguousarray(self.src[order]),
               np.ascontiguousarray(self.dst[order]),
               np.ascontiguousarray(self.reduce[order].astype(np.uint8)))
        for arr in out:
            arr.flags.writeable = False
        return out

    def bytes_sent(self, count: int, itemsize: int) -> np.ndarray:
        """Bytes each rank sends when the table runs on ``count`` elements per rank.

        For the ring all-reduce this is 2(N-1)/N · S per rank (exactly, up to the
        uneven last element of each chunk); it is what the runtimes' counters and the
        cost model charge to the link.
        """
        sizes = np.diff(chunk_bounds(count, self.nchunks))
        return np.bincount(self.src, weights=sizes[self.chunk] * itemsize,
                           minlength=self.nranks).astype(np.int64)

    def check(self) -> None:
        """Raise ValueError unless the table is well formed.

        Checks ranges, that steps never decrease, that no rank sends to itself, that no
        ``(rank, chunk)`` is both read and written within one step, and that a
        ``(rank, chunk)`` written twice in one step is only reduced into, never copied.
        """
        if self.collective not in COLLECTIVES:
            raise ValueError(f"{self.name}: unknown collective {self.collective!r}")
        n, c = self.nranks, self.nchunks
        for label, arr, hi in (("src", self.src, n), ("dst", self.dst, n),
                               ("chunk", self.chunk, c)):
            if arr.size and (arr.min() < 0 or arr.max() >= hi):
                raise ValueError(f"{self.name}: {label} out of range [0, {hi})")
        if self.step.size and np.any(np.diff(self.step) < 0):
            raise ValueError(f"{self.name}: steps are not sorted")
        if np.any(self.src == self.dst):
            raise ValueError(f"{self.name}: a rank sends to itself")
        # Keys (step, rank, chunk) of what each row reads and writes; vectorized so that
        # tables of millions of transfers check in NumPy time.
        base = self.step * n
        reads = (base + self.src) * c + self.chunk
        writes = (base + self.dst) * c + self.chunk
        sorted_reads = np.sort(reads)
        at = np.minimum(np.searchsorted(sorted_reads, writes), max(len(self) - 1, 0))
        read_write = sorted_reads[at] == writes if len(self) else writes.astype(np.bool_)
        by_key = np.argsort(writes, kind="stable")  # rows of one key stay in table order
        again = writes[by_key[1:]] == writes[by_key[:-1]]
        both_reduce = self.reduce[by_key[1:]] & self.reduce[by_key[:-1]]
        rewritten = np.zeros(len(self), dtype=np.bool_)
        rewritten[by_key[1:][again & ~both_reduce]] = True
        bad = np.flatnonzero(read_write | rewritten)
        if bad.size:
            i = int(bad[0])
            what = ("is both sent and received in the same step" if read_write[i] else
                    "is written twice and not only by reductions")
            raise ValueError(f"{self.name}: step {int(self.step[i])}: rank {int(self.dst[i])} "
                             f"chunk {int(self.chunk[i])} {what}")

    def contributions(self, initial: list[list[frozenset[int]]]) -> list[list[frozenset[int]]]:
        """Run the table symbolically: which ranks' inputs each ``(rank, chunk)`` holds.

        ``initial[r][c]`` is the set of contributions rank r's chunk c starts with. A
        reduce unions the sets and raises ValueError if they overlap (a contribution would
        be counted twice); a copy replaces the set. Used to prove a table correct for any
        N without touching numbers.
        """
        state = [list(row) for row in initial]
        for t in self:
            incoming = state[t.src][t.chunk]
            if t.reduce:
                if state[t.dst][t.chunk] & incoming:
                    raise ValueError(f"{self.name}: step {t.step}: rank {t.dst} chunk "
                                     f"{t.chunk} would count a contribution twice")
                state[t.dst][t.chunk] = state[t.dst][t.chunk] | incoming
            else:
                state[t.dst][t.chunk] = incoming
        return state
