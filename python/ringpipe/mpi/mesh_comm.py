"""The mesh's TP, PP and DP groups as MPI sub-communicators.

World rank w is mesh rank w, with coordinates ``Mesh.coord(w) = (d, p, t)`` and
w = (d·pp + p)·tp + t (:mod:`ringpipe.mesh`). Each group is made by one
``MPI_Comm_split`` (MPI standard §6.4.2): ranks with the same *colour* land in one
sub-communicator, ordered by *key*:

=====  ===========================  ======  =====================================
group  colour (what members share)  key     members
=====  ===========================  ======  =====================================
tp     d·pp + p                     t       the T tensor-parallel shards of a stage
pp     d·tp + t                     p       one replica's pipeline, by stage rank
dp     p·tp + t                     d       the replicas of one (pp, tp) position
=====  ===========================  ======  =====================================

so a process's rank inside each sub-communicator is its coordinate on that axis and
the group's members are exactly ``Mesh.group(axis, w)``. ``tp``/``pp``/``dp`` are
:class:`~ringpipe.mpi.group.ProcessGroup` s (collectives); ``pp_comm`` is the raw PP
communicator, for the pipeline's tagged point-to-point messages.
"""

from __future__ import annotations

from typing import Any

from ringpipe.mesh import Coord, Mesh
from ringpipe.mpi.group import DEFAULT_SEGMENT_BYTES, ProcessGroup


def check_world_size(mesh: Mesh, nprocs: int) -> None:
    """ValueError unless the job has exactly one process per mesh rank."""
    if nprocs != mesh.world:
        raise ValueError(f"the mesh {mesh} has {mesh.world} ranks but the job has {nprocs} "
                         f"processes; start it with mpiexec -n {mesh.world} (ringpipe verify: "
                         f"--np {mesh.world}, or leave --np out)")


class MeshComm:
    """One process's view of the mesh: its coordinates and its three groups."""

    def __init__(self, mesh: Mesh, comm: Any, *,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        if not isinstance(mesh, Mesh):
            raise TypeError(f"MeshComm: mesh must be a Mesh, got {type(mesh).__name__}")
        check_world_size(mesh, comm.Get_size())
        self.mesh = mesh
        self.comm = comm
        self.rank: int = comm.Get_rank()
        self.coord: Coord = mesh.coord(self.rank)
        d, p, t = self.coord
        self.tp_comm = comm.Split(d * mesh.pp + p, t)
        self.pp_comm = comm.Split(d * mesh.tp + t, p)
        self.dp_comm = comm.Split(p * mesh.tp + t, d)
        kw = {"segment_bytes": segment_bytes}
        self.tp = ProcessGroup(self.tp_comm, name="tp", **kw)
        self.pp = ProcessGroup(self.pp_comm, name="pp", **kw)
        self.dp = ProcessGroup(self.dp_comm, name="dp", **kw)

    def free(self) -> None:
        """Release every sub-communicator (collective over the world)."""
        for group in (self.tp, self.pp, self.dp):
            group.free()
        for sub in (self.tp_comm, self.pp_comm, self.dp_comm):
            sub.Free()

    def __repr__(self) -> str:
        return f"MeshComm({self.mesh}, rank {self.rank} at {tuple(self.coord)})"
