"""The mesh's groups as MPI sub-communicators: TP, CP, PP, DP, DP×CP, EP and EDP.

World rank w is mesh rank w, with coordinates ``Mesh.coord(w) = (d, p, t, c)`` and
w = ((d·pp + p)·cp + c)·tp + t (:mod:`ringpipe.mesh`). Each group is made by one
``MPI_Comm_split`` (MPI standard §6.4.2): ranks with the same *colour* land in one
sub-communicator, ordered by *key*. The colour is the group's first rank and the key a
rank's position in it, both read from :meth:`ringpipe.mesh.Mesh.group`, so a process's
rank inside each sub-communicator is its position in ``Mesh.group(axis, w)`` and the
members are exactly that group, for every axis:

=======  ============================================================================
group    members (``Mesh.group``)
=======  ============================================================================
tp       the T tensor-parallel shards of a stage (same d, p, c)
cp       the context-parallel ranks of one sequence (same d, p, t): ring attention
pp       one replica's pipeline, by stage rank (same d, c, t)
dp       the replicas of one (pp, cp, tp) position
dp_cp    every (d, c) of one (pp, tp) position: dense gradients are reduced over it
ep       the expert-parallel ranks of one MoE layer: the dispatch/combine all-to-all
edp      the ranks holding the same experts: expert gradients are reduced over it
=======  ============================================================================

Each is a :class:`~ringpipe.mpi.group.ProcessGroup` (collectives); ``pp_comm`` and
``cp_comm`` are the raw PP and CP communicators, for the pipeline's tagged messages and
the K/V ring's point-to-point messages (``tp_comm``, ``dp_comm``, ``dp_cp_comm`` and
``edp_comm`` the others, for NCCL communicators built over them).
"""

from __future__ import annotations

from typing import Any

from ringpipe.mesh import Coord, Mesh
from ringpipe.mpi.group import DEFAULT_SEGMENT_BYTES, ProcessGroup
from ringpipe.mpi.loader import load_mpi

#: The sub-communicators a :class:`MeshComm` makes, in the order every rank splits them.
MESH_GROUPS = ("tp", "cp", "pp", "dp", "dp_cp", "ep", "edp")


def check_world_size(mesh: Mesh, nprocs: int) -> None:
    """ValueError unless the job has exactly one process per mesh rank."""
    if nprocs != mesh.world:
        raise ValueError(f"the mesh {mesh} has {mesh.world} ranks but the job has {nprocs} "
                         f"processes; start it with mpiexec -n {mesh.world} (ringpipe verify: "
                         f"--np {mesh.world}, or leave --np out)")


class MeshComm:
    """One process's view of the mesh: its coordinates and its groups."""

    def __init__(self, mesh: Mesh, comm: Any, *,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        if not isinstance(mesh, Mesh):
            raise TypeError(f"MeshComm: mesh must be a Mesh, got {type(mesh).__name__}")
        check_world_size(mesh, comm.Get_size())
        self.mesh = mesh
        self.comm = comm
        self.rank: int = comm.Get_rank()
        self.coord: Coord = mesh.coord(self.rank)
        self._subs: dict[str, Any] = {}
        self.groups: dict[str, ProcessGroup] = {}
        for axis in MESH_GROUPS:
            members = mesh.group(axis, self.rank)
            sub = comm.Split(members[0], members.index(self.rank))
            self._subs[axis] = sub
            self.groups[axis] = ProcessGroup(sub, name=axis, segment_bytes=segment_bytes)
        self.tp, self.pp, self.dp = self.groups["tp"], self.groups["pp"], self.groups["dp"]
        self.cp, self.dp_cp = self.groups["cp"], self.groups["dp_cp"]
        self.ep, self.edp = self.groups["ep"], self.groups["edp"]
        self.tp_comm, self.pp_comm = self._subs["tp"], self._subs["pp"]
        self.dp_comm, self.cp_comm = self._subs["dp"], self._subs["cp"]
        self.dp_cp_comm, self.edp_comm = self._subs["dp_cp"], self._subs["edp"]
        node = comm.Split_type(load_mpi().COMM_TYPE_SHARED)
        #: the ranks of ``comm`` on this process's node (shared memory), this one included
        self.local_ranks: int = node.Get_size()
        node.Free()

    def free(self) -> None:
        """Release every sub-communicator (collective over the world)."""
        for axis in MESH_GROUPS:
            self.groups[axis].free()
        for axis in MESH_GROUPS:
            self._subs[axis].Free()

    def __repr__(self) -> str:
        return f"MeshComm({self.mesh}, rank {self.rank} at {tuple(self.coord)})"
