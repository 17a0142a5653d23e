"""Collectives over the processes of one MPI communicator, from ringpipe's step tables.

A :class:`ProcessGroup` wraps a communicator (it ``Dup`` s it, so its messages live in
their own context and never match the caller's, MPI standard §6.4.2) and offers, per
process, what :mod:`ringpipe.collectives` offers per list of in-process ranks:

* ``all_reduce(buf, algorithm="ring"|"tree"|"mpi", op=...)`` -- every rank ends with
  the reduction; ``"mpi"`` is the library's own ``MPI_Allreduce``, the baseline;
* ``reduce_scatter(buf, ...)`` -- rank r keeps chunk r (``chunk_bounds(size, N)``);
* ``all_gather(buf, ...)`` -- rank r contributes chunk r (in place) or its whole
  buffer (``out=``, which receives the N pieces in rank order).

``"ring"`` and ``"tree"`` run the *same* step tables as the in-process executors
(:func:`ringpipe.kernels.registry.step_table`) with :mod:`ringpipe.mpi.engine`, so their
results are bitwise identical to ``ringpipe.all_reduce(..., backend="numpy")`` for the
same algorithm, whatever ``segment_bytes`` (pipelining never changes an element's
reduction order). ``"mpi"`` is not: MPICH picks its own reduction order.

**Agreement check.** A collective whose ranks disagree on the buffer size, dtype, op or
algorithm would hang or corrupt memory. Each call therefore first ``Allgather`` s one
small int64 record per rank -- (world rank, count, dtype, op, algorithm, collective,
local error) -- and *every* rank raises the same TypeError/ValueError naming the first
offending rank, before any data moves. A local problem (not an array, unsupported
dtype, not C-contiguous, read-only, wrong ``out``) is reported the same way, so no rank
is left waiting. ``check=False`` skips the round trip for trusted hot loops.

Scratch for received reductions is kept by the group and reused, and compiled per-rank
programs are cached by (table, size, segment), so a repeated call allocates nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ringpipe.checks import SUPPORTED_DTYPES, SUPPORTED_OPS
from ringpipe.kernels.numpy_exec import REDUCE_UFUNCS
from ringpipe.kernels.registry import ALGORITHMS, step_table
from ringpipe.kernels.steps import chunk_bounds
from ringpipe.mpi.engine import RankProgram, compile_table, run_program
from ringpipe.mpi.loader import load_mpi
from ringpipe.mpi.persistent import PersistentAllReduce
from ringpipe.validation import check_int

#: Default pipelining segment: large enough to amortise per-message costs, small enough
#: that a received segment is reduced while still in L2 (see benchmarks/bench_mpi.py).
DEFAULT_SEGMENT_BYTES = 1 << 20

#: Algorithms per collective; "mpi" (the library's own) is offered for all_reduce only.
MPI_ALGORITHMS = {
    "all_reduce": (*ALGORITHMS["all_reduce"], "mpi"),
    "reduce_scatter": tuple(ALGORITHMS["reduce_scatter"]),
    "all_gather": tuple(ALGORITHMS["all_gather"]),
}
_COLLECTIVES = tuple(MPI_ALGORITHMS)
_ERRORS = ("", "buffer is not a numpy array", "buffer has an unsupported dtype",
           "buffer is not C-contiguous", "buffer is read-only",
           "out is not a writeable C-contiguous numpy array of the buffer's dtype",
           "out has the wrong number of elements")


class CollectiveError(ValueError):
    """A collective's ranks disagree or one rank's arguments are invalid."""


def _local_problem(buffer: object, out: object, writeable: bool,
                   out_elems: int | None) -> tuple[int, type[Exception], str]:
    """(error code, exception type, message) of this rank's arguments; code 0 if fine."""
    if isinstance(buffer, (np.matrix, np.ma.MaskedArray)):
        return 1, TypeError, f"buffer is an {type(buffer).__name__}; pass np.asarray(...)"
    if not isinstance(buffer, np.ndarray):
        return 1, TypeError, f"buffer is a {type(buffer).__name__}, expected numpy.ndarray"
    if buffer.dtype not in SUPPORTED_DTYPES:
        return 2, TypeError, (f"buffer has unsupported dtype {buffer.dtype}; supported: "
                              f"{', '.join(str(d) for d in SUPPORTED_DTYPES)}")
    if not buffer.flags.c_contiguous:
        return 3, ValueError, "buffer is not C-contiguous; pass np.ascontiguousarray(...)"
    if writeable and not buffer.flags.writeable:
        return 4, ValueError, "buffer is read-only"
    if out is not None:
        if not (isinstance(out, np.ndarray) and out.flags.c_contiguous
                and out.flags.writeable and out.dtype == buffer.dtype):
            return 5, TypeError, _ERRORS[5]
        if out_elems is not None and out.size != out_elems:
            return 6, ValueError, f"out has {out.size} elements, expected {out_elems}"
        if np.may_share_memory(out, buffer) and out.size != buffer.size:
            return 6, ValueError, "out partially overlaps buffer"
    return 0, ValueError, ""


class ProcessGroup:
    """Step-table collectives over one communicator (see the module docstring)."""

    def __init__(self, comm: Any, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 name: str = "group") -> None:
        check_int(f"{name}: segment_bytes (0: no segmenting)", segment_bytes, 0)
        self._mpi = load_mpi()
        self.comm = comm.Dup()
        self.name = name
        self.rank: int = self.comm.Get_rank()
        self.size: int = self.comm.Get_size()
        self.world_rank: int = self._mpi.COMM_WORLD.Get_rank()
        self.segment_bytes = segment_bytes
        self._programs: dict[tuple, RankProgram] = {}
        self._scratch = np.empty(0, dtype=np.uint8)

    # -- bookkeeping -------------------------------------------------------------------
    def free(self) -> None:
        """Release the duplicated communicator (collective over the group)."""
        if self.comm != self._mpi.COMM_NULL:
            self.comm.Free()

    def program(self, collective: str, algorithm: str, count: int,
                itemsize: int) -> RankProgram:
        """This rank's compiled (and cached) program for a table on ``count`` elements."""
        seg = self.segment_bytes // itemsize if self.segment_bytes else 0
        key = (collective, algorithm, count, max(seg, 1) if self.segment_bytes else 0)
        prog = self._programs.get(key)
        if prog is None:
            table = step_table(collective, algorithm, self.size)
            prog = compile_table(table, self.rank, count, key[3])
            self._programs[key] = prog
        return prog

    def _scratch_for(self, elems: int, dtype: np.dtype) -> np.ndarray:
        nbytes = elems * dtype.itemsize
        if self._scratch.nbytes < nbytes:
            self._scratch = np.empty(nbytes, dtype=np.uint8)
        return self._scratch[:nbytes].view(dtype)

    # -- the agreement check --------------------------------------------------------------
    def _agree(self, collective: str, buffer: object, algorithm: str, op: str,
               out: object = None, out_elems: int | None = None,
               writeable: bool = True) -> None:
        where = f"{collective} ({self.name})"
        if algorithm not in MPI_ALGORITHMS[collective]:
            raise ValueError(f"{where}: rank {self.world_rank}: unknown algorithm "
                             f"{algorithm!r}; choose one of "
                             f"{', '.join(map(repr, MPI_ALGORITHMS[collective]))}")
        if op not in SUPPORTED_OPS:
            raise ValueError(f"{where}: rank {self.world_rank}: unknown op {op!r}; choose "
                             f"one of {', '.join(map(repr, SUPPORTED_OPS))}")
        code, kind, message = _local_problem(buffer, out, writeable, out_elems)
        count = buffer.size if code == 0 else -1  # type: ignore[union-attr]
        dtype = SUPPORTED_DTYPES.index(buffer.dtype) if code == 0 else -1  # type: ignore
        mine = np.array([self.world_rank, count, dtype, SUPPORTED_OPS.index(op),
                         MPI_ALGORITHMS[collective].index(algorithm),
                         _COLLECTIVES.index(collective), code], dtype=np.int64)
        table = np.empty((self.size, mine.size), dtype=np.int64)
        self.comm.Allgather(mine, table)
        bad = np.flatnonzero(table[:, 6])
        if bad.size:
            who = int(table[bad[0], 0])
            if code and who == self.world_rank:
                raise kind(f"{where}: rank {who}: {message}")
            raise CollectiveError(f"{where}: rank {who}: {_ERRORS[int(table[bad[0], 6])]}")
        for r in range(1, self.size):
            if not np.array_equal(table[r, 1:6], table[0, 1:6]):
                raise CollectiveError(f"{where}: rank {int(table[r, 0])}: "
                                      f"{_describe(table[r])} but rank {int(table[0, 0])} "
                                      f"has {_describe(table[0])}")

    # -- the collectives ---------------------------------------------------------------
    def _run(self, collective: str, algorithm: str, flat: np.ndarray, op: str) -> None:
        if self.size == 1 or flat.size == 0:
            return
        prog = self.program(collective, algorithm, flat.size, flat.itemsize)
        scratch = self._scratch_for(prog.scratch_elems, flat.dtype)
        run_program(prog, flat, scratch, self.comm, REDUCE_UFUNCS[op], self._mpi.BYTE,
                    self._mpi.Request)

    def all_reduce(self, buffer: np.ndarray, algorithm: str = "ring", op: str = "sum", *,
                   out: np.ndarray | None = None, check: bool = True) -> np.ndarray:
        """Reduce every rank's ``buffer`` with ``op``; returns the result (``buffer`` in
        place, else ``out``, which must have its shape and dtype)."""
        if check:
            self._agree("all_reduce", buffer, algorithm, op, out,
                        None if out is None else getattr(buffer, "size", None), out is None)
        target = buffer if out is None else out
        if out is not None and out is not buffer:
            out.reshape(-1)[...] = buffer.reshape(-1)
        flat = target.reshape(-1)
        if algorithm == "mpi":
            if self.size > 1 and flat.size:
                self.comm.Allreduce(self._mpi.IN_PLACE, flat, op=self._mpi_op(op))
        else:
            self._run("all_reduce", algorithm, flat, op)
        return target

    def all_reduce_init(self, buffer: np.ndarray, algorithm: str = "ring",
                        op: str = "sum") -> PersistentAllReduce:
        """Agree on and bind ``buffer`` once; the handle runs the in-place all-reduce on
        its current contents at every call (:mod:`ringpipe.mpi.persistent`). Collective:
        every rank of the group calls it with its own buffer."""
        if algorithm == "mpi":
            raise ValueError(f"all_reduce_init ({self.name}): rank {self.world_rank}: "
                             "algorithm 'mpi' has no persistent step table; use 'ring' or "
                             "'tree'")
        self._agree("all_reduce", buffer, algorithm, op)
        flat = buffer.reshape(-1)
        prog = self.program("all_reduce", algorithm, flat.size, flat.itemsize)
        scratch = np.empty(prog.scratch_elems, dtype=flat.dtype)  # the handle's own
        return PersistentAllReduce(self.comm, prog, flat, scratch, REDUCE_UFUNCS[op],
                                   self._mpi)

    def reduce_scatter(self, buffer: np.ndarray, algorithm: str = "ring", op: str = "sum", *,
                       out: np.ndarray | None = None, check: bool = True) -> np.ndarray:
        """Reduce every rank's ``buffer``; rank r gets chunk r (``chunk_bounds(size, N)``).

        In place the result is chunk r of ``buffer`` (a view is returned; the rest holds
        partial sums, as in NCCL); with ``out`` (chunk r's length) ``buffer`` is untouched.
        """
        want = None
        if out is not None and isinstance(buffer, np.ndarray):
            b = chunk_bounds(buffer.size, self.size)
            want = int(b[self.rank + 1] - b[self.rank])
        if check:
            self._agree("reduce_scatter", buffer, algorithm, op, out, want, out is None)
        flat = buffer.reshape(-1) if out is None else buffer.reshape(-1).copy()
        self._run("reduce_scatter", algorithm, flat, op)
        b = chunk_bounds(flat.size, self.size)
        mine = flat[b[self.rank]:b[self.rank + 1]]
        if out is None:
            return mine
        out.reshape(-1)[...] = mine
        return out

    def all_gather(self, buffer: np.ndarray, algorithm: str = "ring", *,
                   out: np.ndarray | None = None, check: bool = True) -> np.ndarray:
        """Every rank gets every rank's piece. In place rank r's piece is chunk r of its
        ``buffer``; with ``out`` it is all of ``buffer`` and ``out`` (N times its size)
        receives the pieces in rank order."""
        want = None if out is None or not isinstance(buffer, np.ndarray) else (
            self.size * buffer.size)
        if check:
            self._agree("all_gather", buffer, algorithm, "sum", out, want, out is None)
        if out is None:
            self._run("all_gather", algorithm, buffer.reshape(-1), "sum")
            return buffer
        piece = buffer.size
        flat = out.reshape(-1)
        flat[self.rank * piece:(self.rank + 1) * piece] = buffer.reshape(-1)
        self._run("all_gather", algorithm, flat, "sum")
        return out

    def _mpi_op(self, op: str) -> Any:
        return {"sum": self._mpi.SUM, "max": self._mpi.MAX, "min": self._mpi.MIN}[op]

    def __repr__(self) -> str:
        return (f"ProcessGroup({self.name!r}, rank {self.rank} of {self.size}, "
                f"segment_bytes={self.segment_bytes})")


def _describe(row: np.ndarray) -> str:
    dtype = SUPPORTED_DTYPES[int(row[2])]
    return (f"{int(row[1])} elements of {dtype}, op {SUPPORTED_OPS[int(row[3])]!r}, "
            f"algorithm {MPI_ALGORITHMS[_COLLECTIVES[int(row[5])]][int(row[4])]!r}")
