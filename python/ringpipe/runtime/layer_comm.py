"""The layers' communication on each runtime: :class:`~ringpipe.model.blocks.comm.LayerComm` s.

* :class:`InprocLayerComm` — a pipeline position's ranks in this process: every list
  holds them all, in mesh-rank order, and each collective runs group by group on the
  in-process executors (``ringpipe.all_reduce``, ``all_to_all``, ``all_gather``) or,
  for the CP ring, moves the arrays the step table says;
* :class:`MpiLayerComm` — one rank per process: the same collectives over the TP, CP
  and EP sub-communicators (:class:`~ringpipe.mpi.mesh_comm.MeshComm`), on the same
  step tables, so both runtimes give the same bits.

Both count through :class:`~ringpipe.runtime.groups.CountedAllReduce` (the TP and CP
all-reduces) and :func:`count_table` (the step tables' bytes: the CP ring's blocks,
the EP all-to-all and all-gather), so their counters agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from ringpipe.arrays import array_module, to_host
from ringpipe.collectives.all_to_all import all_to_all
from ringpipe.collectives.api import all_gather
from ringpipe.kernels.registry import step_table
from ringpipe.kernels.steps import StepTable
from ringpipe.mesh import Mesh
from ringpipe.model.blocks.comm import LayerComm
from ringpipe.runtime.groups import CountedAllReduce, RankTally

__all__ = ["InprocLayerComm", "MpiLayerComm", "count_table"]


def count_table(table: StepTable, count: int, itemsize: int, group: str,
                members: Sequence[int], tallies: Sequence[RankTally],
                step: int | None = None) -> None:
    """Add to each member's ``group`` bytes what it sends in ``table`` on ``count``
    elements per rank (only step ``step`` when given)."""
    if step is None:
        sent = table.bytes_sent(count, itemsize)
    else:
        rows = table.step == step
        sent = np.bincount(table.src[rows], minlength=table.nranks) * count * itemsize
    for member, tally in zip(members, tallies, strict=True):
        tally.bytes_sent[group] = tally.bytes_sent.get(group, 0) + int(sent[member])


def _groups(mesh: Mesh, ranks: Sequence[int], axis: str) -> list[list[int]]:
    """The ``axis`` groups among ``ranks``, as lists of indices into ``ranks``, each in
    group order."""
    index = {r: i for i, r in enumerate(ranks)}
    seen: dict[tuple[int, ...], None] = {}
    for r in ranks:
        seen.setdefault(mesh.group(axis, r), None)
    return [[index[m] for m in g] for g in seen]


class InprocLayerComm(LayerComm):
    """Every rank of pipeline position ``ranks`` in this process (module docstring)."""

    def __init__(self, mesh: Mesh, ranks: Sequence[int], reduce: Callable[[list], None],
                 algorithm: str, tallies: Sequence[RankTally], backend: str,
                 tuning: Any) -> None:  # noqa: ANN401 - a KernelTuning
        self.mesh, self.ranks = mesh, tuple(ranks)
        self.reduce, self.algorithm, self.tallies = reduce, algorithm, tuple(tallies)
        self.backend, self.tuning = backend, tuning
        self.groups = {axis: _groups(mesh, ranks, axis) for axis in ("tp", "cp", "ep")}
        super().__init__(self._tp_all_reduce, len(ranks), cp=mesh.cp, ep=mesh.ep,
                         cp_ranks=tuple(mesh.coord(r).cp for r in ranks),
                         ep_ranks=tuple(mesh.expert_coord(r).ep for r in ranks))

    def _reduce_groups(self, axis: str, buffers: list) -> None:
        for g in self.groups[axis]:
            CountedAllReduce(self.reduce, self.algorithm, axis, len(g), range(len(g)),
                             [self.tallies[i] for i in g])([buffers[i] for i in g])

    def _tp_all_reduce(self, buffers: list) -> None:
        self._reduce_groups("tp", buffers)

    def cp_all_reduce(self, buffers: list) -> None:
        self._reduce_groups("cp", buffers)

    def cp_exchange(self, table: StepTable, step: int, blocks: list) -> list:
        out = list(blocks)
        rows = [(int(s), int(d)) for s, d in zip(table.src[table.step == step],
                                                 table.dst[table.step == step], strict=True)]
        for g in self.groups["cp"]:
            for src, dst in rows:
                out[g[dst]] = blocks[g[src]].copy()
            count_table(table, blocks[g[0]].size, blocks[g[0]].itemsize, "cp",
                        range(len(g)), [self.tallies[i] for i in g], step)
        return out

    def ep_all_to_all(self, buffers: list) -> list:
        out = list(buffers)
        for g in self.groups["ep"]:
            mine = [buffers[i] for i in g]
            got = all_to_all(mine, backend=self.backend, tuning=self.tuning,
                             out=[array_module(b).empty_like(b) for b in mine])
            table = step_table("all_to_all", "pairwise", len(g))
            count_table(table, len(g) * mine[0].size, mine[0].itemsize, "ep", range(len(g)),
                        [self.tallies[i] for i in g])
            for i, b in zip(g, got, strict=True):
                out[i] = b
        return out

    def ep_all_gather(self, buffers: list) -> list:
        out = list(buffers)
        for g in self.groups["ep"]:
            mine = [buffers[i] for i in g]
            got = [array_module(b).empty(len(g) * b.size, dtype=b.dtype) for b in mine]
            all_gather(mine, backend=self.backend, tuning=self.tuning, out=got)
            count_table(step_table("all_gather", "ring", len(g)), got[0].size,
                        got[0].itemsize, "ep", range(len(g)), [self.tallies[i] for i in g])
            for i, b in zip(g, got, strict=True):
                out[i] = b
        return out


class MpiLayerComm(LayerComm):
    """This process's rank: the collectives over the :class:`MeshComm` groups. Arrays on
    a device are staged through the host (``upload`` brings a host array back)."""

    def __init__(self, mesh_comm: Any, algorithm: str, tp_reduce: Callable[[list], None],  # noqa: ANN401
                 tally: RankTally, upload: Callable[[np.ndarray], Any] = np.asarray) -> None:
        mc = self.mc = mesh_comm
        self.algorithm, self.tally, self.upload = algorithm, tally, upload
        self.cp_reduce = CountedAllReduce(partial(_reduce_one, mc.cp, algorithm, upload),
                                          algorithm, "cp", mc.cp.size, [mc.cp.rank], [tally])
        super().__init__(tp_reduce, 1, cp=mc.mesh.cp, ep=mc.mesh.ep,
                         cp_ranks=(mc.coord.cp,), ep_ranks=(mc.mesh.expert_coord(mc.rank).ep,))

    def cp_all_reduce(self, buffers: list) -> None:
        self.cp_reduce(buffers)

    def cp_exchange(self, table: StepTable, step: int, blocks: list) -> list:
        (block,) = blocks
        me = self.mc.cp.rank
        rows = table.step == step
        dst = int(table.dst[rows & (table.src == me)][0])
        src = int(table.src[rows & (table.dst == me)][0])
        send = np.ascontiguousarray(to_host(block))
        got = np.empty_like(send)
        self.mc.cp_comm.Sendrecv(send, dst, step, got, src, step)
        count_table(table, block.size, block.itemsize, "cp", [me], [self.tally], step)
        return [self.upload(got)]

    def ep_all_to_all(self, buffers: list) -> list:
        (buf,) = buffers
        host = np.ascontiguousarray(to_host(buf))
        got = self.mc.ep.all_to_all(host, out=np.empty_like(host), check=False)
        table = step_table("all_to_all", "pairwise", self.mc.ep.size)
        count_table(table, self.mc.ep.size * buf.size, buf.itemsize, "ep", [self.mc.ep.rank],
                    [self.tally])
        return [self.upload(got)]

    def ep_all_gather(self, buffers: list) -> list:
        (buf,) = buffers
        n = self.mc.ep.size
        host = np.ascontiguousarray(to_host(buf))
        got = self.mc.ep.all_gather(host, out=np.empty(n * host.size, dtype=host.dtype),
                                    check=False)
        count_table(step_table("all_gather", "ring", n), got.size, got.itemsize, "ep",
                    [self.mc.ep.rank], [self.tally])
        return [self.upload(got)]


def _reduce_one(group: Any, algorithm: str, upload: Callable[[np.ndarray], Any],  # noqa: ANN401
                buffers: list) -> None:
    (buf,) = buffers
    host = np.array(to_host(buf), copy=True)
    group.all_reduce(host, algorithm)
    buf[...] = upload(host)
