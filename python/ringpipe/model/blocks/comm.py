"""What a stage's layers communicate: :class:`LayerComm`, for the ranks one call holds.

The stage functions (:mod:`ringpipe.model.stage`) take per-rank lists: entry i of a list
is one mesh rank's array. In-process a call holds every rank of its pipeline position
(all TP ranks of every CP rank and DP replica: the all-to-all of expert parallelism
crosses replicas), under MPI only its own. The layers never ask which: they call

* :meth:`LayerComm.tp_all_reduce` — Megatron's f / g: sum each TP group's buffers, in
  place (the ``all_reduce`` callable of :mod:`ringpipe.model.layers`);
* :meth:`LayerComm.cp_exchange` — one step of a point-to-point step table over the CP
  ring (ring attention's K/V rotation, :func:`ringpipe.kernels.exchange.ring_pass`):
  every entry sends its block as the table says and gets its predecessor's;
* :meth:`LayerComm.cp_all_reduce` — sum over the CP group (per-sequence statistics of
  the MoE auxiliary loss);
* :meth:`LayerComm.ep_all_to_all` and :meth:`LayerComm.ep_all_gather` — the MoE
  dispatch/combine all-to-all over the expert-parallel group, and the gather of the
  token counts that sizes it.

``cp_ranks[i]`` and ``ep_ranks[i]`` are entry i's coordinates on the CP ring and in its
EP group. This base class is the trivial case, cp = ep = 1 (every list entry is one TP
rank, the PR-era API): :func:`as_layer_comm` wraps a plain ``all_reduce`` callable into
it. The runtimes implement the rest (:mod:`ringpipe.runtime.layer_comm`), in-process
and over MPI, on the same step tables, so both give the same bits.
"""

from __future__ import annotations

from typing import Any

from ringpipe.kernels.steps import StepTable
from ringpipe.model.layers import AllReduce, check_all_reduce

__all__ = ["LayerComm", "as_layer_comm"]


class LayerComm:
    """The layers' communication for ``len(cp_ranks)`` entries (module docstring); this
    base class has cp = ep = 1 and reduces TP groups with ``tp_reduce``."""

    def __init__(self, tp_reduce: AllReduce, entries: int = 1, *, cp: int = 1, ep: int = 1,
                 cp_ranks: tuple[int, ...] | None = None,
                 ep_ranks: tuple[int, ...] | None = None) -> None:
        check_all_reduce(tp_reduce)
        self.tp_reduce = tp_reduce
        self.cp, self.ep = cp, ep
        self.cp_ranks = (0,) * entries if cp_ranks is None else tuple(cp_ranks)
        self.ep_ranks = (0,) * entries if ep_ranks is None else tuple(ep_ranks)

    @property
    def entries(self) -> int:
        """How many ranks' arrays each list holds."""
        return len(self.cp_ranks)

    def tp_all_reduce(self, buffers: list) -> None:
        """Sum each TP group's buffers in place (every list holds whole TP groups)."""
        self.tp_reduce(buffers)

    def cp_exchange(self, table: StepTable, step: int, blocks: list) -> list:
        """Step ``step`` of ``table`` over the CP ring: entry i sends ``blocks[i]`` where
        the table says; returns what each entry receives (fresh arrays)."""
        raise ValueError(f"cp_exchange: this LayerComm has no CP ring (cp = {self.cp})")

    def cp_all_reduce(self, buffers: list) -> None:
        """Sum each CP group's buffers in place (nothing to do for cp = 1)."""
        if self.cp != 1:
            raise ValueError(f"cp_all_reduce: this LayerComm has no CP ring (cp = {self.cp})")

    def ep_all_to_all(self, buffers: list) -> list:
        """All-to-all over each EP group (buffers of ep equal blocks, block j for EP rank
        j); returns the received buffers. The identity for ep = 1."""
        if self.ep != 1:
            raise ValueError(f"ep_all_to_all: this LayerComm has no EP group (ep = {self.ep})")
        return [b.copy() for b in buffers]

    def ep_all_gather(self, buffers: list) -> list:
        """Each entry's buffer gathered over its EP group, in EP-rank order (ep · size
        elements). A copy for ep = 1."""
        if self.ep != 1:
            raise ValueError(f"ep_all_gather: this LayerComm has no EP group (ep = {self.ep})")
        return [b.copy() for b in buffers]


def as_layer_comm(comm: Any, entries: int) -> LayerComm:  # noqa: ANN401 - callable or comm
    """``comm`` itself when it is a :class:`LayerComm` (it must hold ``entries``
    entries), else a plain ``all_reduce`` callable wrapped for cp = ep = 1."""
    if isinstance(comm, LayerComm):
        if comm.entries != entries:
            raise ValueError(f"the LayerComm holds {comm.entries} ranks but the lists hold "
                             f"{entries}")
        return comm
    return LayerComm(comm, entries)
