"""Step tables across GPUs: each rank's buffer on its own device, moved by peer copies.

When the rank buffers of ``backend="cupy"`` live on several devices (one rank per GPU,
as in a real job), no single kernel can see them all, so the table runs as the NCCL
ring and tree kernels do across GPUs (``src/device/prims_simple.h``: send,
recvReduceSend, recvCopySend on each chunk), one transfer at a time:

* copy transfer ``dst[c] = src[c]``: one peer copy (``cudaMemcpyPeerAsync`` through
  CuPy) straight into the receiver's chunk;
* reduce transfer ``dst[c] = op(dst[c], src[c])``: a peer copy of the sender's chunk into
  a scratch buffer on the receiver's device, then the step-table kernel on a two-rank,
  one-transfer table (:func:`pair_table`) on that device, which applies ``op`` with
  exactly the semantics of every other executor (float16 via NumPy's rounding, NumPy's
  max/min on signed zeros and NaN).

Every device is synchronised before the first transfer (peer copies are queued on the
receiver's stream, which does not wait for the sender's pending work) and at the end of
each step. Transfers run in table order, so each element sees the reduction sequence of
the NumPy executor: results are bitwise equal to ``backend="numpy"``. Within a step no
``(rank, chunk)`` is both read and written (:meth:`StepTable.check`), so nothing a step
reads changes under it; two reductions into one receiver in one step are queued in table
order on that receiver's stream, which orders their shared scratch buffer. Scratch is
one largest-chunk buffer per receiving rank, allocated on its device.

The device work is behind :class:`PeerOps` (CuPy's implementation is in
:mod:`ringpipe.kernels.cuda.backend`), so the schedule itself is tested on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

from ringpipe.kernels.steps import StepTable, Transfer, chunk_bounds


class PeerOps(Protocol):
    """The device operations a step table needs when ranks sit on different devices."""

    def scratch(self, like: Any, size: int) -> Any:  # noqa: ANN401 - a device array
        """A flat array of ``size`` elements of ``like``'s dtype on ``like``'s device."""

    def copy(self, dst: Any, src: Any) -> None:  # noqa: ANN401
        """``dst[...] = src`` (equal sizes), from any device, queued on ``dst``'s device."""

    def combine(self, dst: Any, src: Any, op: str) -> None:  # noqa: ANN401
        """``dst = op(dst, src)`` elementwise on their (common) device, queued there."""

    def barrier(self, arrays: Sequence[Any]) -> None:
        """Return once every device holding one of ``arrays`` has finished its work."""


@lru_cache(maxsize=1)
def pair_table() -> StepTable:
    """Two ranks, one chunk, one transfer: rank 1 reduced into rank 0."""
    return StepTable.from_transfers("peer_pair_reduce", "reduce", 2, 1,
                                    [Transfer(0, 1, 0, 0, True)], root=0)


def run_table_peer(table: StepTable, buffers: Sequence[Any], op: str, ops: PeerOps,
                   inputs: Sequence[Any] | None = None) -> None:
    """Execute ``table`` on rank buffers that may sit on different devices.

    With ``inputs`` (one per rank, each on its rank's device) every rank first copies
    its input into its buffer. Arguments are assumed checked by the caller
    (:mod:`ringpipe.collectives.api`); see the module docstring for the order of work.
    """
    flat = [b.reshape(-1) for b in buffers]
    sources = flat if inputs is None else [a.reshape(-1) for a in inputs]
    # A copy queued on the receiver's stream is not ordered after work still pending on
    # the sender's device (the caller's last kernel, say): drain every device first.
    ops.barrier(flat + sources)
    if inputs is not None:
        for dst, src in zip(flat, sources, strict=True):
            ops.copy(dst, src)
        ops.barrier(flat)
    count = int(flat[0].size)
    if count == 0 or len(table) == 0:
        return
    bounds = chunk_bounds(count, table.nchunks).tolist()
    largest = max(hi - lo for lo, hi in zip(bounds, bounds[1:], strict=False))
    scratch: dict[int, Any] = {}
    for step in table.steps():
        for t in step:
            lo, hi = bounds[t.chunk], bounds[t.chunk + 1]
            if lo == hi:
                continue
            src, dst = flat[t.src][lo:hi], flat[t.dst][lo:hi]
            if not t.reduce:
                ops.copy(dst, src)
                continue
            if t.dst not in scratch:
                scratch[t.dst] = ops.scratch(flat[t.dst], largest)
            staged = scratch[t.dst][:hi - lo]
            ops.copy(staged, src)
            ops.combine(dst, staged, op)
        ops.barrier(flat)
