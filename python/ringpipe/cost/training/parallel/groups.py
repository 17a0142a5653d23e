"""Where a configuration's groups sit on the cluster: GPU indices and node crossings.

A :class:`~ringpipe.mesh.Mesh` numbers its ranks ``arange(world).reshape(dp, pp, cp,
tp)`` and the cluster numbers its GPUs node-major. **Placement** says which GPU each
mesh rank runs on:

* ``"ringpipe"`` (the default, what ringpipe's runtimes launch): mesh rank r on GPU r,
  i.e. TP innermost, then CP, PP, and DP outermost — the order of Llama 3's training
  ("[TP, CP, PP, DP]", Llama Team 2024, §3.3.2);
* ``"megatron"``: Megatron-core's default order ``tp-cp-ep-dp-pp`` (``parallel_state``),
  PP outermost: rank (d, p, c, t) on GPU ((p·dp + d)·cp + c)·tp + t, so a pipeline
  stage's DP, CP and EP ranks sit together. The published Megatron/NeMo runs are
  priced on this placement (:mod:`ringpipe.cost.published.parallel_report`).

:func:`mesh_groups` reads, for one configuration and placement,

* the groups of mesh rank 0 along every axis (``tp``, ``cp``, ``pp``, ``dp``, ``dp_cp``,
  ``ep``, ``edp``, ``etp``: :meth:`ringpipe.mesh.Mesh.group`), as the GPU indices the
  collective model prices them on (:class:`~ringpipe.cost.hardware.collectives.CollectiveModel`);
* per axis, the most GPUs of one node whose group spans nodes (``crossers``): they all
  cross nodes at once in a step, so each gets the NIC share
  :meth:`~ringpipe.cost.hardware.cluster.Cluster.crossing_bandwidth` of that many; 0
  when every group of the axis stays inside a node;
* for ``pp`` and ``dp``, the most GPUs of one node whose *next* rank along the axis is
  on another node (``next_crossers``: a pipeline message goes to the next stage only).

Everything is computed on the whole rank grid with NumPy (a 16,384-GPU mesh in
milliseconds), since the search places thousands of configurations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringpipe.mesh import Mesh

__all__ = ["PLACEMENTS", "MeshGroups", "mesh_groups"]

#: Placements of mesh ranks on GPUs (module docstring).
PLACEMENTS = ("ringpipe", "megatron")


@dataclass(frozen=True)
class MeshGroups:
    """Mesh rank 0's groups (GPU indices) and the crossers of every axis."""

    groups: dict[str, tuple[int, ...]]
    crossers: dict[str, int]
    next_crossers: dict[str, int]

    def crosses(self, axis: str) -> bool:
        """Whether some group along ``axis`` spans nodes."""
        return self.crossers[axis] > 0


def _rows(mesh: Mesh, axis: str) -> np.ndarray:
    """Every group along ``axis`` as one row of mesh ranks, in group order."""
    grid = np.arange(mesh.world).reshape(mesh.dp, mesh.pp, mesh.cp, mesh.tp)
    dense = {"dp": 0, "pp": 1, "cp": 2, "tp": 3}
    if axis in dense:
        return np.moveaxis(grid, dense[axis], -1).reshape(-1, getattr(mesh, axis))
    if axis == "dp_cp":  # (pp, tp) fixed, (d, c) d-major
        return grid.transpose(1, 3, 0, 2).reshape(-1, mesh.dp * mesh.cp)
    etp = mesh.etp  # type: ignore[assignment]
    expert = grid.transpose(1, 0, 2, 3).reshape(mesh.pp, mesh.edp, mesh.ep, etp)
    axis_index = {"edp": 1, "ep": 2, "etp": 3}[axis]
    size = expert.shape[axis_index]
    return np.moveaxis(expert, axis_index, -1).reshape(-1, size)


def gpu_of_rank(mesh: Mesh, placement: str) -> np.ndarray:
    """The GPU index of every mesh rank under ``placement`` (module docstring)."""
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    if placement == "ringpipe":
        return np.arange(mesh.world)
    # GPUs in Megatron's order (pp, dp, cp, tp), read back at each rank's (d, p, c, t)
    gpus = np.arange(mesh.world).reshape(mesh.pp, mesh.dp, mesh.cp, mesh.tp)
    return gpus.transpose(1, 0, 2, 3).reshape(-1)


def mesh_groups(mesh: Mesh, gpus_per_node: int, placement: str = "ringpipe") -> MeshGroups:
    """The groups and crossers of ``mesh`` on nodes of ``gpus_per_node`` GPUs."""
    gpu = gpu_of_rank(mesh, placement)
    groups: dict[str, tuple[int, ...]] = {}
    crossers: dict[str, int] = {}
    next_crossers: dict[str, int] = {}
    for axis in ("tp", "cp", "pp", "dp", "dp_cp", "ep", "edp", "etp"):
        rows = gpu[_rows(mesh, axis)]
        first = rows[np.nonzero(rows == gpu[0])[0][0]]
        groups[axis] = tuple(int(r) for r in first)
        nodes = rows // gpus_per_node
        spanning = nodes.min(axis=1) != nodes.max(axis=1)
        crossers[axis] = int(np.bincount(nodes[spanning].ravel()).max()) \
            if spanning.any() else 0
        if axis in ("pp", "dp"):
            crossing = nodes != np.roll(nodes, -1, axis=1)
            next_crossers[axis] = int(np.bincount(nodes[crossing].ravel()).max()) \
                if crossing.any() else 0
    return MeshGroups(groups, crossers, next_crossers)
