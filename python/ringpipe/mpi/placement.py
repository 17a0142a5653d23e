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

A hostfile lists one host per line, ``#`` comments allowed, in the form of the
``mpiexec`` that reads it: ``host[:slots]`` for MPICH's Hydra, ``host slots=N`` for Open
MPI (:func:`read_hostfile`). :func:`nodes_from_hostfile` predicts the node of every rank
by that implementation's rules (Hydra merges consecutive lines naming one host and fills
the lines in order, wrapping around; Open MPI adds up the slots of a host named twice and
fills each host's slots in turn), a node being a host name, so the CLI can refuse a bad
placement before it starts ``mpiexec``. The ranks check again after launch, from what
MPI reports.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringpipe.files import display, read_text
from ringpipe.mesh import Mesh
from ringpipe.validation import check_int

__all__ = ["HOSTFILE_FLAVOURS", "HOSTFILE_MAX_BYTES", "NodeLayout", "check_placement",
           "detect_nodes", "format_placement", "nodes_from_hostfile", "read_hostfile"]


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


#: Largest hostfile read (a line per host of the largest machines is well under it).
HOSTFILE_MAX_BYTES = 1 << 20
#: The mpiexec implementations whose hostfile rules are modelled.
HOSTFILE_FLAVOURS = ("hydra", "openmpi")

#: One hostfile line: the host and its slots (None: an Open MPI line without ``slots=``,
#: which gets the node's core count, unknown before launch).
HostLine = tuple[str, int | None]


def _hydra_line(fields: list[str]) -> HostLine | None:
    match = re.fullmatch(r"([^:=\s]+)(?::([0-9]+))?", fields[0])
    options_ok = all(re.fullmatch(r"[A-Za-z_]+=\S*", f) and not f.startswith("slots=")
                     for f in fields[1:])
    if match is None or not options_ok or (match.group(2) and int(match.group(2)) < 1):
        return None
    return match.group(1), int(match.group(2) or 1)


def _openmpi_line(fields: list[str]) -> HostLine | None:
    if not re.fullmatch(r"[^:=\s]+", fields[0]):
        return None
    slots: int | None = None
    for option in fields[1:]:
        key, sep, value = option.partition("=")
        if not sep or key not in ("slots", "max_slots", "max-slots", "port") \
                or not value.isascii() or not value.isdigit() or int(value) < 1:
            return None
        if key == "slots":
            slots = int(value)
    return fields[0], slots


def read_hostfile(path: str | Path, flavour: str = "hydra") -> list[HostLine]:
    """``[(host, slots)]``, one per line, from the hostfile of ``flavour``'s mpiexec:
    ``"hydra"`` (MPICH: ``host[:slots]``, then optional ``key=value`` options only
    mpiexec reads) or ``"openmpi"`` (``host [slots=N] [max_slots=N]``; slots None when
    not given). Read through the one safe reader (:func:`ringpipe.files.read_text`: a
    FIFO, a device, a directory or a file over :data:`HOSTFILE_MAX_BYTES` is refused
    without blocking); ValueError naming the file and line otherwise."""
    if flavour not in HOSTFILE_FLAVOURS:
        raise ValueError(f"hostfile flavour must be one of {HOSTFILE_FLAVOURS}, got "
                         f"{flavour!r}")
    shown = display(os.fspath(path))
    text = read_text(path, "hostfile", HOSTFILE_MAX_BYTES, "one host per line",
                     f"--hostfile {shown}")
    hosts: list[HostLine] = []
    for number, raw in enumerate(text.splitlines(), 1):
        fields = raw.split("#", 1)[0].split()
        if not fields:
            continue
        line = (_hydra_line if flavour == "hydra" else _openmpi_line)(fields)
        if line is None:
            if flavour == "hydra":
                hint = ("; 'slots=N' is Open MPI's form, Hydra's is host:N"
                        if any(f.startswith("slots=") for f in fields) else "")
                want = "host[:slots] with slots >= 1"
            else:
                hint = ("; 'host:N' is MPICH Hydra's form, Open MPI's is 'host slots=N'"
                        if ":" in fields[0] else "")
                want = "host [slots=N] with N >= 1"
            raise ValueError(f"--hostfile {shown}: line {number}: expected {want}, got "
                             f"{display(raw.strip())!r}{hint}")
        hosts.append(line)
    if not hosts:
        raise ValueError(f"--hostfile {shown}: names no host")
    return hosts


def _hydra_entries(hosts: Sequence[HostLine]) -> list[tuple[str, int]]:
    """Hydra's node list: consecutive lines naming the same host merge into one entry
    with their slots added (MPICH ``HYDU_add_to_node_list``); a host named again later
    is another entry (another proxy, on the same machine)."""
    entries: list[tuple[str, int]] = []
    for host, slots in hosts:
        if entries and entries[-1][0] == host:
            entries[-1] = (host, entries[-1][1] + int(slots or 1))
        else:
            entries.append((host, int(slots or 1)))
    return entries


def _openmpi_blocks(hosts: Sequence[HostLine], nprocs: int) -> list[tuple[str, int]] | None:
    """Open MPI's by-slot mapping (its default): a host named on several lines is one
    node with their slots added; ranks fill each node's slots in the order the hosts
    first appear; oversubscribed (more ranks than slots, which the launcher allows), the
    extra ranks are spread evenly, the first nodes taking one more. None when a line
    has no ``slots=`` (the node's core count decides, unknown before launch)."""
    merged: dict[str, int] = {}
    for host, slots in hosts:
        if slots is None:
            return None
        merged[host] = merged.get(host, 0) + slots
    total = sum(merged.values())
    extra = max(0, nprocs - total)
    balance, rest = divmod(extra, len(merged))
    blocks, left = [], nprocs
    for i, (host, slots) in enumerate(merged.items()):
        take = min(left, slots + (balance + (i < rest) if extra else 0))
        blocks.append((host, take))
        left -= take
    return blocks


def nodes_from_hostfile(hosts: Sequence[HostLine], nprocs: int,
                        flavour: str = "hydra") -> tuple[int, ...] | None:
    """The node of each of ``nprocs`` ranks as ``flavour``'s mpiexec places them, a
    node being a host name (lines naming one host are one machine, so its ranks share
    memory whichever line placed them); nodes are numbered in order of first mention.

    * ``"hydra"``: the entries of :func:`_hydra_entries` are filled in order, each
      with its slots, then again from the first until every rank is placed;
    * ``"openmpi"``: :func:`_openmpi_blocks`; None when a line has no ``slots=``.
    """
    nprocs = check_int("nprocs", nprocs)
    if flavour not in HOSTFILE_FLAVOURS:
        raise ValueError(f"hostfile flavour must be one of {HOSTFILE_FLAVOURS}, got "
                         f"{flavour!r}")
    if not hosts or any(slots is not None and slots < 1 for _, slots in hosts):
        raise ValueError(f"hosts must name at least one host with slots >= 1, got "
                         f"{list(hosts)}")
    number: dict[str, int] = {}
    for host, _ in hosts:
        number.setdefault(host, len(number))
    if flavour == "openmpi":
        blocks = _openmpi_blocks(hosts, nprocs)
        if blocks is None:
            return None
        return tuple(number[host] for host, take in blocks for _ in range(take))
    entries = _hydra_entries(hosts)
    node_of: list[int] = []
    while len(node_of) < nprocs:
        for host, slots in entries:
            node_of.extend([number[host]] * min(slots, nprocs - len(node_of)))
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
