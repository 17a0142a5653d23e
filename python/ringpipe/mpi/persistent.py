"""Persistent step-table all-reduce over MPI: agree once, then start many times.

``ProcessGroup.all_reduce`` pays, on every call, an ``Allgather`` that makes every rank
agree on size, dtype, op and algorithm (so a disagreement raises on all ranks instead
of hanging), plus the creation of one MPI request per message. For small messages those
costs dominate: at 4 KiB on 2 ranks the agreement alone is an extra collective round.

:class:`PersistentAllReduce` (from :meth:`ProcessGroup.all_reduce_init
<ringpipe.mpi.group.ProcessGroup.all_reduce_init>`) does the agreement once, binds the
buffer, compiles this rank's program (:func:`~ringpipe.mpi.engine.compile_table`) and
creates persistent requests for every message (``MPI_Recv_init``/``MPI_Send_init``, MPI
standard §3.9). A call then starts each tick's requests with ``Startall``, reduces each
reception in table order as it completes, and waits for the sends: the same messages in
the same order as :func:`~ringpipe.mpi.engine.run_program`, so results are bitwise equal
to the one-shot path and to the in-process executors. It is the MPI counterpart of
:func:`ringpipe.all_reduce_init` (and of MPI-4's ``MPI_Allreduce_init``).

The handle reads the buffer's *current contents* at every call; the buffer must not be
reallocated or resized. :meth:`PersistentAllReduce.free` releases the requests.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ringpipe.mpi.engine import RankProgram

__all__ = ["PersistentAllReduce"]


class PersistentAllReduce:
    """An all-reduce bound to one buffer; call it to run (see the module docstring)."""

    def __init__(self, comm: Any, program: RankProgram, buffer: np.ndarray,  # noqa: ANN401
                 scratch: np.ndarray, ufunc: np.ufunc, mpi: Any) -> None:
        self.buffer, self.scratch, self.ufunc, self.mpi = buffer, scratch, ufunc, mpi
        byte = mpi.BYTE
        self.ticks: list[tuple[list, list, list]] = []
        for tick in program.ticks:
            recvs, reductions = [], []
            for m in tick.recvs:
                view = scratch[m.slot:m.slot + m.hi - m.lo] if m.reduce else buffer[m.lo:m.hi]
                recvs.append(comm.Recv_init([view, byte], m.peer, m.tag))
                reductions.append((buffer[m.lo:m.hi], view) if m.reduce else None)
            sends = [comm.Send_init([buffer[m.lo:m.hi], byte], m.peer, m.tag)
                     for m in tick.sends]
            self.ticks.append((recvs, sends, reductions))

    def __call__(self) -> np.ndarray:
        """Run the all-reduce on the buffer's current contents; returns the buffer."""
        start, request = self.mpi.Prequest.Startall, self.mpi.Request
        for recvs, sends, reductions in self.ticks:
            start(recvs)
            start(sends)
            for req, reduction in zip(recvs, reductions, strict=True):
                req.Wait()
                if reduction is not None:
                    dst, landed = reduction
                    self.ufunc(dst, landed, out=dst)
            request.Waitall(sends)
        return self.buffer

    def free(self) -> None:
        """Release every persistent request."""
        for recvs, sends, _ in self.ticks:
            for req in (*recvs, *sends):
                req.Free()
        self.ticks = []
