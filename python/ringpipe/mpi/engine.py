"""Run a collective's step table over MPI point-to-point messages, one process per rank.

**From table to messages.** Rank r executes the rows of a
:class:`~ringpipe.kernels.steps.StepTable` that involve it: at step s it sends chunk c
of its buffer for every row ``(s, r, dst, c, ·)`` and receives chunk c for every row
``(s, src, r, c, reduce)``. A received reduction goes into a scratch slot and is then
applied as ``np.<op>(buf[c], slot, out=buf[c])`` -- the receiver's value first, exactly
as the NumPy reference executor (:mod:`ringpipe.kernels.numpy_exec`) -- and a rank
applies its receptions in *table order*, so every element is reduced in the order the
table fixes and results are bitwise identical to the in-process executors. A received
copy lands directly in the buffer (the table guarantees no chunk is read and written in
one step, and a chunk copied into is written only once in that step).

**Pipelining (segments).** Every chunk is cut into segments of at most
``segment_elems`` elements, segment j covering elements ``[lo + j·seg, lo + (j+1)·seg)``
of chunk ``[lo, hi)``. Segment j of a row of step s is sent at *tick* ``s + j`` -- a
wavefront, as NCCL pipelines slices through its FIFO (``src/device/prims_simple.h``)
and as Patarasuk & Yuan (2009, §4) pipeline large messages. Within a tick no element
range is both read and written (rows of one step touch disjoint ranges per segment,
and different segments are disjoint), and an element range's rows keep their relative
order shifted uniformly by j, so **segmenting never changes an element's reduction
order**: the ring's order is per chunk and independent of any further sub-chunking. So
a message never exceeds one segment, a segment is reduced while it is still in cache,
and with K segments per chunk the ring's 2(N-1) steps take 2(N-1)+K-1 ticks, in each of
which up to 2(N-1) segments (one per step in flight) move concurrently. Scratch holds
one segment per reduction in flight -- at most min(N-1, K) segments on the ring, not
the buffer -- and is reused across ticks and calls.

**One tick.** Post an ``Irecv`` for every reception (MPI standard §3.7: non-blocking,
so receives are posted before the matching sends arrive and no send waits on an
unposted receive), ``Isend`` every send, then complete the receptions in table order,
reducing each as it lands, and wait for the sends. Messages between one pair of ranks
are posted in table order on both ends, so MPI's non-overtaking rule (§3.5) matches
them even with equal tags; the tag is the chunk index, for readability in traces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ringpipe.kernels.steps import StepTable, chunk_bounds


@dataclass(frozen=True)
class Message:
    """One message of a tick: peer rank, element range ``[lo, hi)``, and for a reception
    whether it is reduced into the buffer (via scratch offset ``slot``) or copied."""

    peer: int
    lo: int
    hi: int
    reduce: bool
    tag: int
    slot: int = 0


@dataclass(frozen=True)
class Tick:
    """The sends and receptions (in table order) a rank posts together at wavefront tick
    ``index`` (= step + segment; ticks where a rank has nothing to do are left out)."""

    index: int
    sends: tuple[Message, ...]
    recvs: tuple[Message, ...]


@dataclass(frozen=True)
class RankProgram:
    """A table compiled for one rank, buffer size and segment size."""

    rank: int
    count: int
    ticks: tuple[Tick, ...]
    scratch_elems: int  # most elements held in scratch at one tick

    @property
    def messages_sent(self) -> int:
        """Number of messages this rank sends."""
        return sum(len(t.sends) for t in self.ticks)


def _segments(lo: int, hi: int, seg: int) -> list[tuple[int, int]]:
    return [(a, min(a + seg, hi)) for a in range(lo, hi, seg)]


def compile_table(table: StepTable, rank: int, count: int, segment_elems: int) -> RankProgram:
    """Rank ``rank``'s program for ``table`` on ``count`` elements, segmented (module docs).

    ``segment_elems`` <= 0 means one segment per chunk (no pipelining).
    """
    if not 0 <= rank < table.nranks:
        raise ValueError(f"rank {rank} out of range for a table of {table.nranks} ranks")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    bounds = chunk_bounds(count, table.nchunks)
    seg = segment_elems if segment_elems > 0 else max(count, 1)
    ticks: dict[int, tuple[list[Message], list[Message]]] = {}
    for t in table:
        if rank not in (t.src, t.dst):
            continue
        lo, hi = int(bounds[t.chunk]), int(bounds[t.chunk + 1])
        for j, (a, b) in enumerate(_segments(lo, hi, seg)):
            sends, recvs = ticks.setdefault(t.step + j, ([], []))
            if t.src == rank:
                sends.append(Message(t.dst, a, b, False, t.chunk))
            else:
                recvs.append(Message(t.src, a, b, t.reduce, t.chunk))
    out: list[Tick] = []
    most = 0
    for tick in sorted(ticks):
        sends, recvs = ticks[tick]
        placed, used = [], 0
        for m in recvs:  # table order within the tick; give each reduction a slot
            if m.reduce:
                placed.append(Message(m.peer, m.lo, m.hi, True, m.tag, used))
                used += m.hi - m.lo
            else:
                placed.append(m)
        most = max(most, used)
        out.append(Tick(tick, tuple(sends), tuple(placed)))
    return RankProgram(rank, count, tuple(out), most)


def run_program(program: RankProgram, buffer: np.ndarray, scratch: np.ndarray, comm: Any,
                ufunc: np.ufunc, byte_type: Any, request: Any) -> None:
    """Execute ``program`` in place on this rank's flat ``buffer`` over ``comm``.

    ``scratch`` is a flat array of the buffer's dtype with at least
    ``program.scratch_elems`` elements; ``byte_type`` is ``MPI.BYTE`` and ``request``
    the ``MPI.Request`` class (passed in so this module never imports mpi4py).
    """
    for tick in program.ticks:
        recv_reqs = []
        for m in tick.recvs:
            view = scratch[m.slot:m.slot + m.hi - m.lo] if m.reduce else buffer[m.lo:m.hi]
            recv_reqs.append(comm.Irecv([view, byte_type], m.peer, m.tag))
        send_reqs = [comm.Isend([buffer[m.lo:m.hi], byte_type], m.peer, m.tag)
                     for m in tick.sends]
        for m, req in zip(tick.recvs, recv_reqs, strict=True):
            req.Wait()
            if m.reduce:
                dst = buffer[m.lo:m.hi]
                ufunc(dst, scratch[m.slot:m.slot + m.hi - m.lo], out=dst)
        request.Waitall(send_reqs)
