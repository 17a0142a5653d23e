"""Where the mesh's ranks sit: nodes, local ranks, GPUs, and whether that placement is sane.

**Nodes.** Processes that share memory form a node: ``MPI_Comm_split_type(
MPI_COMM_TYPE_SHARED)`` (MPI-3 §6.4.2) groups them, whatever started the job (Hydra's
``mpiexec``, Open MPI, Slurm's ``srun``). A process's *local rank* is its rank in that
group and picks its GPU (``local_rank mod GPUs per node``), as ``torchrun``'s
``LOCAL_RANK`` does. Nodes are numbered by their lowest world rank.

**Placement rules** (Narayanan et al., SC'21, §3.3; NCCL's topology guidance):

* a TP group all-reduces every layer's activations, twice forward and twice backward:
  it needs NVLink-class bandwidth, so a TP group that spans nodes is refused unless the
  user allows it explicitly;
* PP sends one activation per micro-batch per stage boundary, so PP is the axis to put
  across nodes; when a PP boundary crosses nodes while the TP groups fill only part of
  a node, a larger TP degree would keep more traffic inside the node, and we say so;
* CP (ring attention) and EP (the MoE all-to-alls) exchange data every layer: a CP or
  EP group that spans nodes is reported as a warning.

A hostfile lists ``host[:slots]`` per line (MPICH Hydra's format, ``#`` comments);
:func:`nodes_from_hostfile` predicts the node of every rank as Hydra fills the lines in
order (each line a node), so the CLI can refuse a bad placement before it starts
``mpiexec``. The ranks check again after launch, from what MPI reports.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringpipe.mesh import Mesh
from ringpipe.validation import check_int

__all__ = ["NodeLayout", "check_placement", "detect_nodes", "format_placement",
           "nodes_from_hostfile", "read_hostfile"]


@dataclass(frozen=True)
class NodeLayout:
    """Node of every world rank, and this process's local rank among its node's ranks."""

    node_of_rank: tuple[int, ...]
    local_rank: int
    local_size: int

    @property
    def nodes(self) -> int:
        """How many nodes the job spans."""
        return len(set(self.node_of_rank))


def detect_nodes(comm: Any, mpi: Any) -> NodeLayout:  # noqa: ANN401 - an mpi4py communicator
    """The job's :class:`NodeLayout`, from the shared-memory split (collective)."""
    local = comm.Split_type(mpi.COMM_TYPE_SHARED, key=comm.Get_rank())
    try:
        leader = local.bcast(comm.Get_rank(), root=0)
        leaders = comm.allgather(leader)
        number = {lead: i for i, lead in enumerate(sorted(set(leaders)))}
        return NodeLayout(tuple(number[lead] for lead in leaders), local.Get_rank(),
                          local.Get_size())
    finally:
        local.Free()


def read_hostfile(path: str | Path) -> list[tuple[str, int]]:
    """``[(host, slots)]`` from a Hydra hostfile: ``host[:slots]`` per line, then
    optional ``key=value`` options (e.g. ``user=...``) that only mpiexec reads."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--hostfile {path}: cannot read it ({exc})") from None
    hosts: list[tuple[str, int]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        fields = raw.split("#", 1)[0].split()
        if not fields:
            continue
        match = re.fullmatch(r"([^:=\s]+)(?::([0-9]+))?", fields[0])
        options_ok = all(re.fullmatch(r"[A-Za-z_]+=\S*", f) and not f.startswith("slots=")
                         for f in fields[1:])
        if match is None or not options_ok or (match.group(2) and int(match.group(2)) < 1):
            hint = ("; 'slots=N' is Open MPI's form, Hydra's is host:N"
                    if any(f.startswith("slots=") for f in fields) else "")
            raise ValueError(f"--hostfile {path}: line {number}: expected host[:slots] "
                             f"with slots >= 1, got {raw.strip()!r}{hint}")
        hosts.append((match.group(1), int(match.group(2) or 1)))
    if not hosts:
        raise ValueError(f"--hostfile {path}: names no host")
    return hosts


def nodes_from_hostfile(hosts: Sequence[tuple[str, int]], nprocs: int) -> tuple[int, ...]:
    """The node index of each of ``nprocs`` ranks as Hydra places them: fill each line's
    slots in order, then start again from the first line. Hydra treats every line as a
    node of its own, even when a host name repeats (checked with MPICH's Hydra)."""
    nprocs = check_int("nprocs", nprocs)
    if not hosts or any(slots < 1 for _, slots in hosts):
        raise ValueError(f"hosts must name at least one host with slots >= 1, got "
                         f"{list(hosts)}")
    node_of: list[int] = []
    while len(node_of) < nprocs:
        for i, (_, slots) in enumerate(hosts):
            node_of.extend([i] * min(slots, nprocs - len(node_of)))
    return tuple(node_of)


def check_placement(mesh: Mesh, node_of_rank: Sequence[int],
                    allow_cross_node_tp: bool = False) -> list[str]:
    """Refuse a TP group spanning nodes (ValueError, unless allowed); return warnings."""
    if len(node_of_rank) != mesh.world:
        raise ValueError(f"placement: {len(node_of_rank)} ranks placed for the mesh {mesh} "
                         f"of {mesh.world} ranks")
    warnings: list[str] = []
    per_node: dict[int, int] = {}
    for node in node_of_rank:
        per_node[node] = per_node.get(node, 0) + 1
    for r in range(0, mesh.world, mesh.tp):
        nodes = sorted({node_of_rank[m] for m in mesh.group("tp", r)})
        if len(nodes) > 1:
            d, p, _, c = mesh.coord(r)
            where = f"(dp {d}, pp {p}, cp {c})" if mesh.cp > 1 else f"(dp {d}, pp {p})"
            text = (f"the TP group of {where} spans nodes {nodes}: TP all-reduces "
                    "every layer and needs NVLink-class bandwidth inside one node")
            if not allow_cross_node_tp:
                raise ValueError(f"{text}; use a --tp that divides the ranks per node "
                                 f"({min(per_node.values())}), or --allow-cross-node-tp")
            warnings.append(text)
    smallest = min(per_node.values())
    for axis, what in (("cp", "ring attention passes K/V blocks every layer"),
                       ("ep", "the MoE all-to-alls run twice forward and backward per layer")):
        if getattr(mesh, axis) == 1:
            continue
        spans = [g for g in mesh.groups(axis) if len({node_of_rank[m] for m in g}) > 1]
        if spans:
            warnings.append(f"the {axis.upper()} group {list(spans[0])} spans nodes: {what} "
                            "(TP innermost, then CP: keep tp · cp, and the EP group, within "
                            f"the {smallest} ranks per node where they fit)")
    for r in range(mesh.world):
        d, p, t, c = mesh.coord(r)
        if t or c or p + 1 >= mesh.pp:
            continue
        here, there = node_of_rank[r], node_of_rank[mesh.rank(d, p + 1, 0)]
        if here != there and mesh.tp < smallest:
            warnings.append(f"PP stage boundary {p}->{p + 1} of replica {d} crosses nodes "
                            f"{here}->{there} while TP uses {mesh.tp} of the {smallest} "
                            "ranks per node; a larger --tp would keep more traffic on the "
                            "node's links")
            break
    return warnings


def format_placement(mesh: Mesh, layout: NodeLayout, devices: Sequence[int | None]) -> str:
    """The placement map: one line per rank with its node, local GPU and coordinate."""
    lines = [f"# placement: {mesh.world} ranks on {layout.nodes} node(s)",
             f"{'rank':>5} {'node':>5} {'gpu':>4}  "
             + ("(dp, pp, tp, cp)" if mesh.cp > 1 else "(dp, pp, tp)")]
    for r in range(mesh.world):
        gpu = "-" if devices[r] is None else str(devices[r])
        coord = tuple(mesh.coord(r)) if mesh.cp > 1 else tuple(mesh.coord(r))[:3]
        lines.append(f"{r:>5} {layout.node_of_rank[r]:>5} {gpu:>4}  {coord}")
    return "\n".join(lines)
