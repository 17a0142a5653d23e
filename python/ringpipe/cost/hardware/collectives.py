"""α-β collective costs read off the same step tables the kernels execute.

A step table (:mod:`ringpipe.kernels.steps`) says, for each step, which rank sends
which chunk to which rank; all transfers of a step run concurrently. Placing the
group's ranks on GPUs decides which link each transfer uses: ``intra`` when both GPUs
share a node, ``inter`` otherwise. With S bytes cut into C equal chunks, step k costs

    t_k = max over link classes L used in step k of ( α_L + n_k,L · (S/C) · β_L ),

where n_k,L is the largest number of chunks any one rank sends *or* receives over a
class-L link in step k (links are full duplex; a tree parent receiving from two
children in one step is charged both). The collective costs Σ_k t_k. This is the
Hockney α-β model (Patarasuk & Yuan 2009) evaluated on the table, so any new
algorithm in :data:`ringpipe.kernels.registry.ALGORITHMS` gets a cost for free:

* ring all-reduce on one node: 2(N-1)·α + 2(N-1)/N · S·β  (every step each rank
  moves one S/N chunk); reduce-scatter and all-gather: (N-1)·α + (N-1)/N · S·β;
* double binary tree with K pipeline chunks per tree: about 2(K + log2 N) steps of
  S/(2K) bytes, i.e. log-depth latency; K is chosen per size (:func:`tree_chunks`).

**Groups spanning nodes** pay the inter-node link on the hops that cross nodes. NCCL
runs one channel per NIC, each with its own ring (or tree) over the same GPUs, so a
crossing hop of a group with k members per node is served by k NICs at once: the
crossing bandwidth is k × what each member's NIC gives it (NCCL ``src/graph/search.cc``;
nccl-tests' multi-node busbw on DGX A100 ≈ 8 × 25 GB/s). **NIC sharing:** when c GPUs
of a node cross nodes at once (``concurrent_per_node``: e.g. every GPU of the node runs
its own DP group's all-reduce at the same time), each gets
:meth:`ringpipe.cost.hardware.cluster.Cluster.crossing_bandwidth` (c) =
min(NIC, node injection / c); by default c = k, the group alone.

**Measured tables.** A cluster may carry measured times by size for a collective on a
given number of ranks and nodes (nccl-tests logs, :mod:`ringpipe.cost.hardware.measured`);
:meth:`CollectiveModel.best` prefers them over the α-β model for a group of that shape.

Ring tables hold N·(N-1) rows; above :data:`MAX_TABLE_RANKS` ranks the ring profile
is written down directly (every step, every rank sends one chunk to its successor),
which ``tests/cost/test_collective_costs.py`` checks equals the table-derived profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ringpipe.collectives.choice import PricedAlgorithm, choose
from ringpipe.cost.hardware.cluster import Cluster, Link
from ringpipe.kernels.registry import ALGORITHMS, step_table
from ringpipe.kernels.steps import StepTable
from ringpipe.validation import check_real

#: Largest group whose O(N²) ring table is built; bigger rings use the closed profile.
MAX_TABLE_RANKS = 64
#: Tree pipeline chunk counts tried (powers of two); capped so a table stays small.
TREE_CHUNK_CHOICES = (1, 2, 4, 8, 16, 32, 64)
_MAX_TREE_ROWS = 1 << 18
#: Above this many ranks only every other choice (1, 4, 16, 64) is tried: each tree
#: table of a large group costs O(K·N) to build and check.
_COARSE_TREE_RANKS = 64


@dataclass(frozen=True)
class StepProfile:
    """Per step, the busiest rank's chunk count on each link class (see module doc)."""

    nchunks: int
    intra: np.ndarray
    inter: np.ndarray

    @property
    def nsteps(self) -> int:
        """Number of steps."""
        return int(self.intra.size)

    def time(self, nbytes: float, intra: Link, inter: Link) -> tuple[float, float]:
        """(total time, latency part Σ_k max α) for ``nbytes`` per rank."""
        chunk = nbytes / self.nchunks
        t_in = np.where(self.intra > 0, intra.latency + self.intra * chunk / intra.bandwidth, 0)
        t_out = np.where(self.inter > 0, inter.latency + self.inter * chunk / inter.bandwidth, 0)
        alpha = np.maximum(np.where(self.intra > 0, intra.latency, 0),
                           np.where(self.inter > 0, inter.latency, 0))
        return float(np.maximum(t_in, t_out).sum()), float(alpha.sum())


def profile_from_table(table: StepTable, nodes: Sequence[int]) -> StepProfile:
    """The :class:`StepProfile` of ``table`` with group rank r on node ``nodes[r]``.

    Intra-node load: per step, the most chunks one rank sends or receives over
    intra-node links. Inter-node load: per step, the most chunks crossing into or out
    of one node (they share that node's NICs; see the module docstring).
    """
    if len(nodes) != table.nranks:
        raise ValueError(f"nodes: {len(nodes)} entries for a table of {table.nranks} ranks")
    node = np.asarray(nodes, dtype=np.int64)
    steps = table.nsteps
    crosses = node[table.src] != node[table.dst]

    def busiest(mask: np.ndarray, ends: tuple[np.ndarray, ...], width: int) -> np.ndarray:
        worst = np.zeros(steps, dtype=np.int64)
        for end in ends:
            key = table.step[mask] * width + end[mask]
            counts = np.bincount(key, minlength=steps * width).reshape(steps, width)
            worst = np.maximum(worst, counts.max(axis=1))
        return worst

    intra = busiest(~crosses, (table.src, table.dst), table.nranks)
    inter = busiest(crosses, (node[table.src], node[table.dst]), int(node.max()) + 1)
    return StepProfile(table.nchunks, intra, inter)


def _ring_profile(collective: str, nodes: Sequence[int]) -> StepProfile:
    """The ring's profile written down: each step, rank r sends one chunk to r+1."""
    n = len(nodes)
    steps = 2 * (n - 1) if collective == "all_reduce" else n - 1
    pairs = [(nodes[r], nodes[(r + 1) % n]) for r in range(n)]
    intra = int(any(a == b for a, b in pairs))
    out = np.bincount([a for a, b in pairs if a != b], minlength=max(nodes) + 1)
    into = np.bincount([b for a, b in pairs if a != b], minlength=max(nodes) + 1)
    inter = int(max(out.max(), into.max()))
    return StepProfile(n, np.full(steps, intra, np.int64), np.full(steps, inter, np.int64))


@dataclass(frozen=True)
class CollectiveCost:
    """One priced collective: ``time`` = ``latency_time`` + the bandwidth part (s)."""

    collective: str
    algorithm: str
    nranks: int
    nbytes: float
    time: float
    latency_time: float
    nsteps: int
    pipeline_chunks: int
    spans_nodes: bool


def _check_group(group: int | Sequence[int], cluster: Cluster) -> tuple[int, ...]:
    if isinstance(group, bool):
        raise TypeError("group must be a rank count or a sequence of GPU indices")
    if isinstance(group, int):
        if group < 1:
            raise ValueError(f"group: need at least 1 rank, got {group}")
        ranks = tuple(range(group))
    else:
        ranks = tuple(group)
        if not ranks:
            raise ValueError("group: empty")
        if len(set(ranks)) != len(ranks):
            raise ValueError(f"group: repeated GPU indices in {ranks}")
    for r in ranks:
        cluster.node_of(r)  # raises TypeError / ValueError naming a bad index
    return ranks


@dataclass(frozen=True)
class CollectiveModel:
    """Prices collectives on ``cluster``; memoises profiles (one per planning run)."""

    cluster: Cluster
    _profiles: dict = field(default_factory=dict, repr=False, compare=False)
    _best: dict = field(default_factory=dict, repr=False, compare=False)

    def _profile(self, collective: str, algorithm: str, nodes: tuple[int, ...],
                 k: int) -> StepProfile:
        key = (collective, algorithm, nodes, k)
        if key not in self._profiles:
            if algorithm == "ring" and collective not in ("broadcast", "reduce") \
                    and len(nodes) > MAX_TABLE_RANKS:
                prof = _ring_profile(collective, nodes)
            else:
                prof = profile_from_table(step_table(collective, algorithm, len(nodes),
                                                     pipeline_chunks=k), nodes)
            self._profiles[key] = prof
        return self._profiles[key]

    def cost(self, collective: str, algorithm: str, nbytes: float,
             group: int | Sequence[int], pipeline_chunks: int | None = None,
             concurrent_per_node: int | None = None) -> CollectiveCost:
        """Time of ``collective`` with ``algorithm`` on ``nbytes`` per rank over ``group``
        (a rank count, placed on GPUs 0..N-1, or explicit global GPU indices in the
        algorithm's rank order). ``pipeline_chunks`` None: the cheapest for tree/chain.
        ``concurrent_per_node``: GPUs of a node crossing nodes at once (module doc)."""
        if collective not in ALGORITHMS:
            raise ValueError(f"collective: unknown {collective!r}; choose one of "
                             f"{', '.join(ALGORITHMS)}")
        if algorithm not in ALGORITHMS[collective]:
            raise ValueError(f"algorithm: {collective} has no {algorithm!r}; choose one of "
                             f"{', '.join(ALGORITHMS[collective])}")
        check_real("nbytes", nbytes, 0.0)
        ranks = _check_group(group, self.cluster)
        c = self.cluster
        nodes = tuple(c.node_of(r) for r in ranks)
        per_node = np.bincount(np.asarray(nodes)).astype(np.int64)
        spans = len(set(nodes)) > 1
        k_members = int(per_node[per_node > 0].min())
        crossing = c.crossing_bandwidth(k_members if concurrent_per_node is None
                                        else max(concurrent_per_node, k_members))
        inter = Link(crossing * k_members, c.inter.latency)
        n = len(ranks)
        if n == 1 or nbytes == 0:
            return CollectiveCost(collective, algorithm, n, nbytes, 0.0, 0.0, 0, 1, spans)
        if pipeline_chunks is not None:
            choices: Sequence[int] = (pipeline_chunks,)
        elif algorithm == "ring" and collective not in ("broadcast", "reduce"):
            choices = (1,)  # the ring's chunk count is always N
        else:
            choices = [k for k in TREE_CHUNK_CHOICES if 4 * k * n <= _MAX_TREE_ROWS
                       and (n <= _COARSE_TREE_RANKS or k in (1, 4, 16, 64))] or [1]
        best: CollectiveCost | None = None
        for k in choices:
            prof = self._profile(collective, algorithm, nodes, k)
            total, alpha = prof.time(nbytes, c.intra, inter)
            if best is None or total < best.time:
                best = CollectiveCost(collective, algorithm, n, nbytes, total, alpha,
                                      prof.nsteps, k, spans)
        assert best is not None
        return best

    def best(self, collective: str, nbytes: float, group: int | Sequence[int],
             concurrent_per_node: int | None = None) -> CollectiveCost:
        """The cheapest algorithm ringpipe has for ``collective`` (ties go to the first);
        or, when the cluster has a measured table for it on as many ranks over as many
        nodes (and no more of a node's GPUs cross nodes at once than the group's own),
        the measured time (algorithm ``"measured"``: :meth:`_measured`)."""
        key = (collective, nbytes, group if isinstance(group, int) else tuple(group),
               concurrent_per_node)
        if key not in self._best:
            if collective not in ALGORITHMS:
                self.cost(collective, "ring", nbytes, group)  # raises, naming the choices
            costs = [self.cost(collective, a, nbytes, group,
                               concurrent_per_node=concurrent_per_node)
                     for a in ALGORITHMS[collective]]
            best = min(costs, key=lambda cost: cost.time)
            self._best[key] = self._measured(best, group, concurrent_per_node) or best
        return self._best[key]

    def _measured(self, priced: CollectiveCost, group: int | Sequence[int],
                  concurrent_per_node: int | None) -> CollectiveCost | None:
        """``priced`` re-timed from the cluster's measured table of the same collective,
        rank count and node count (:mod:`ringpipe.cost.hardware.measured`), or None.
        A table measures the group alone: with more of a node's GPUs crossing at once
        (NIC sharing) the α-β model, which accounts for it, is kept."""
        if priced.nranks < 2 or priced.nbytes == 0 or not self.cluster.collectives:
            return None
        ranks = _check_group(group, self.cluster)
        nodes = [self.cluster.node_of(r) for r in ranks]
        table = self.cluster.measured(priced.collective, len(ranks), len(set(nodes)))
        members = int(np.bincount(nodes)[sorted(set(nodes))].min())
        if table is None or (concurrent_per_node or 0) > members:
            return None
        floor = table.time(table.sizes[0])
        return CollectiveCost(priced.collective, "measured", priced.nranks, priced.nbytes,
                              table.time(priced.nbytes), min(floor, table.time(priced.nbytes)),
                              0, 1, priced.spans_nodes)


def tree_chunks(nbytes: float, group: int | Sequence[int], cluster: Cluster) -> int:
    """The tree pipeline chunk count K that minimises the α-β time of a tree all-reduce.

    More chunks shorten the fill/drain (each step moves S/(2K) bytes) but add steps
    (about 2(K + log2 N)); the optimum grows like √(S·β/α), so small messages use K = 1
    and large ones up to 64 (capped so the table stays under 2^18 rows).
    """
    return CollectiveModel(cluster).cost("all_reduce", "tree", nbytes, group).pipeline_chunks


def _fmt_bytes(nbytes: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes:.0f} B"


def choose_algorithm(collective: str, nbytes: float, group: int | Sequence[int],
                     cluster: Cluster) -> tuple[str, str]:
    """The cheapest algorithm for ``collective`` on ``cluster``, and a one-line reason
    (:func:`ringpipe.collectives.choice.choose`, the one rule, with this α-β model).

    ``group`` is the rank count (ranks on GPUs 0..N-1) or the global GPU indices. The
    cluster is explicit: in-process ranks are priced by the host model of
    :mod:`ringpipe.collectives.choice` instead (``algorithm="auto"``).
    """
    if not isinstance(cluster, Cluster):
        raise TypeError(f"cluster must be a Cluster, got {type(cluster).__name__}")
    model = CollectiveModel(cluster)
    names = tuple(ALGORITHMS.get(collective, ()))
    costs = [model.cost(collective, a, nbytes, group) for a in names] if names else \
        [model.cost(collective, "ring", nbytes, group)]  # raises the unknown-collective error
    where = "across nodes" if any(c.spans_nodes for c in costs) else "inside one node"
    priced = [PricedAlgorithm(c.algorithm, c.time, c.latency_time,
                              f"{c.nsteps} steps"
                              + (f", K={c.pipeline_chunks}" if c.pipeline_chunks > 1 else ""))
              for c in costs]
    return choose(collective, priced, f"{_fmt_bytes(nbytes)} on {costs[0].nranks} ranks "
                  f"{where}")
