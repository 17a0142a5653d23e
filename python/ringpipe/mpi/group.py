"""Collectives over the processes of one MPI communicator, from ringpipe's step tables.

A :class:`ProcessGroup` wraps a communicator (it ``Dup`` s it, so its messages live in
their own context and never match the caller's, MPI standard §6.4.2) and offers, per
process, what :mod:`ringpipe.collectives.api` offers per list of in-process ranks:

* ``all_reduce(buf, algorithm="ring"|"tree"|"mpi", op=...)`` -- every rank ends with
  the reduction; ``"mpi"`` is the library's own ``MPI_Allreduce``, the baseline;
* ``reduce_scatter(buf, ...)`` -- rank r keeps chunk r (``chunk_bounds(size, N)``);
* ``all_gather(buf, ...)`` -- rank r contributes chunk r (in place) or its whole
  buffer (``out=``, which receives the N pieces in rank order);
* ``all_to_all(buf, algorithm="pairwise"|"mpi")`` -- block j of rank i's buffer goes
  to rank j, which keeps it as its block i (``MPI_Alltoall`` with equal counts; "mpi"
  is the library's own, the baseline).

``"ring"`` and ``"tree"`` run the *same* step tables as the in-process executors
(:func:`ringpipe.kernels.registry.step_table`) with :mod:`ringpipe.mpi.engine`, so their
results are bitwise identical to ``ringpipe.all_reduce(..., backend="numpy")`` for the
same algorithm, whatever ``segment_bytes`` (pipelining never changes an element's
reduction order). ``"mpi"`` is not: MPICH picks its own reduction order.

**Agreement check** (:mod:`ringpipe.mpi.agreement`). Each call first ``Allgather`` s a
small record per rank, and every rank raises the same TypeError/ValueError naming the
first offending rank before any data moves, so ranks that disagree on size, dtype, op,
algorithm or ``segment_bytes`` (which shapes the step table's messages) never hang or
corrupt memory. ``check=False`` skips the round trip for
trusted hot loops.

**Small messages.** A one-shot ``all_reduce`` of at most ``SMALL_MESSAGE_BYTES`` (and
at most one segment, so a handle holds O(N) requests, never one per tiny segment) copies
the buffer into a staging buffer bound to a cached persistent handle
(:mod:`ringpipe.mpi.persistent`, one per algorithm, op, size and dtype, at most
``STAGED_HANDLES`` kept, the oldest evicted first), runs it, and copies the result
back: the same program, so the same bits, without creating 2(N-1) requests per call.

Scratch for received reductions is kept by the group and reused, and compiled per-rank
programs are cached by (table, size, segment), so a repeated call allocates nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ringpipe.kernels.numpy_exec import REDUCE_UFUNCS
from ringpipe.kernels.registry import step_table
from ringpipe.kernels.steps import chunk_bounds
from ringpipe.mpi.agreement import MPI_ALGORITHMS, Agreement, CollectiveError
from ringpipe.mpi.engine import RankProgram, compile_table, run_program
from ringpipe.mpi.loader import load_mpi
from ringpipe.mpi.persistent import PersistentGroupAllReduce, StagedHandles
from ringpipe.validation import check_int

__all__ = ["DEFAULT_SEGMENT_BYTES", "MPI_ALGORITHMS", "SMALL_MESSAGE_BYTES", "STAGED_HANDLES",
           "CollectiveError", "ProcessGroup"]

#: Default pipelining segment: large enough to amortise per-message costs, small enough
#: that a received segment is reduced while still in L2 (see benchmarks/bench_mpi.py).
DEFAULT_SEGMENT_BYTES = 1 << 20

#: One-shot all-reduces up to this size run through a cached, staged persistent handle.
SMALL_MESSAGE_BYTES = 64 << 10
#: How many staged handles a group keeps (each holds two buffers of the message size).
STAGED_HANDLES = 8

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
        #: world rank of each group rank, to name offenders (gathered once)
        self.world_ranks: tuple[int, ...] = tuple(self.comm.allgather(self.world_rank))
        self._agreement = Agreement(self.comm, name, self.world_rank, self.world_ranks)
        self._staged = StagedHandles(self._bind, STAGED_HANDLES)

    # -- bookkeeping -------------------------------------------------------------------
    def free(self) -> None:
        """Release the staged handles and the duplicated communicator (collective over
        the group)."""
        self._staged.free()
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
        self._agreement.check(collective, buffer, algorithm, op, out, out_elems, writeable,
                              self.segment_bytes)

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
        elif (self.size > 1 and 0 < flat.nbytes <= SMALL_MESSAGE_BYTES
              and (flat.nbytes <= self.segment_bytes or not self.segment_bytes)):
            self._staged.run(flat, algorithm, op)
        else:
            self._run("all_reduce", algorithm, flat, op)
        return target

    def _bind(self, flat: np.ndarray, algorithm: str, op: str) -> PersistentGroupAllReduce:
        prog = self.program("all_reduce", algorithm, flat.size, flat.itemsize)
        scratch = np.empty(prog.scratch_elems, dtype=flat.dtype)  # the handle's own
        return PersistentGroupAllReduce(self.comm, prog, flat, scratch, REDUCE_UFUNCS[op],
                                   self._mpi)

    def all_reduce_init(self, buffer: np.ndarray, algorithm: str = "ring",
                        op: str = "sum") -> PersistentGroupAllReduce:
        """Agree on and bind ``buffer`` once; the handle runs the in-place all-reduce on
        its current contents at every call (:mod:`ringpipe.mpi.persistent`). Collective:
        every rank of the group calls it with its own buffer."""
        self._agree("all_reduce", buffer, algorithm, op)  # every rank, before any refusal
        if algorithm == "mpi":  # all ranks agreed on it, so all refuse alike
            raise ValueError(f"all_reduce_init ({self.name}): rank {self.world_rank}: "
                             "algorithm 'mpi' has no persistent step table; use 'ring' or "
                             "'tree'")
        return self._bind(buffer.reshape(-1), algorithm, op)

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

    def all_to_all(self, buffer: np.ndarray, algorithm: str = "pairwise", *,
                   out: np.ndarray | None = None, check: bool = True) -> np.ndarray:
        """Exchange blocks: block j of this rank's ``buffer`` (N equal blocks) goes to
        rank j, and block i of the result comes from rank i (in place, or into ``out``,
        of the buffer's size). ``"pairwise"`` runs the step table of
        :func:`ringpipe.kernels.exchange.pairwise_all_to_all` on an N·count work buffer,
        bitwise equal to ``ringpipe.all_to_all``; ``"mpi"`` is ``MPI_Alltoall``."""
        if check:
            self._agree("all_to_all", buffer, algorithm, "sum", out,
                        None if out is None else getattr(buffer, "size", None), out is None)
        n, count = self.size, buffer.size
        if count % n:  # every rank agreed on count, so every rank refuses alike
            raise ValueError(f"all_to_all ({self.name}): rank {self.world_rank}: buffer has "
                             f"{count} elements, not a multiple of the {n} ranks")
        target = buffer if out is None else out
        if n == 1 or count == 0:
            if out is not None and out is not buffer:
                out.reshape(-1)[...] = buffer.reshape(-1)
            return target
        if algorithm == "mpi":
            send = buffer.reshape(-1).copy() if out is None else buffer.reshape(-1)
            self.comm.Alltoall(send, target.reshape(-1))
            return target
        block = count // n
        work = np.empty(n * count, dtype=buffer.dtype)
        work[self.rank * count:(self.rank + 1) * count] = buffer.reshape(-1)
        self._run("all_to_all", algorithm, work, "sum")
        target.reshape(n, block)[...] = work.reshape(n, n, block)[:, self.rank, :]
        return target

    def _mpi_op(self, op: str) -> Any:
        return {"sum": self._mpi.SUM, "max": self._mpi.MAX, "min": self._mpi.MIN}[op]

    def __repr__(self) -> str:
        return (f"ProcessGroup({self.name!r}, rank {self.rank} of {self.size}, "
                f"segment_bytes={self.segment_bytes})")
