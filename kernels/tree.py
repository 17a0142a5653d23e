"""Tree algorithms as step tables, after NCCL's double binary tree (``src/graph/trees.cc``).

**Binary tree (tree 0).** For rank r > 0 let ``bit`` be the lowest set bit of r. Its
parent is ``(r ^ bit) | (bit << 1)``, or ``r ^ bit`` when that is out of range. Rank 0 is
the root. This is a binary tree of depth ⌈log2 N⌉ for every N >= 1, not only powers of two.

**Tree 1** is tree 0 mirrored (``r -> N-1-r``) when N is even, and shifted by one
(``r -> (r+1) % N``) when N is odd, so that most ranks that are interior nodes of one tree
are leaves of the other (Sanders et al., "Two-tree algorithms for full bandwidth
broadcast, reduction and scan", 2009, which NCCL follows).

**Double-tree all-reduce.** The buffer is cut into ``2K`` chunks: chunks ``0..K-1`` ride
tree 0 and ``K..2K-1`` tree 1, so each tree carries half the data. On each tree the chunks
are reduced up to the root and then broadcast down, pipelined: a rank of height h
(leaves have h = 0) sends chunk k to its parent at step ``k + h``; the root (height H)
then sends chunk k down at step ``k + H`` and a rank at depth d forwards it at step
``k + H + d``. The latency term is therefore ``O(K + log N)`` steps rather than the
ring's ``2(N-1)``. A parent reduces its children's chunks in increasing child rank, so
the reduction order of every element is fixed by the tree alone and does not depend on K.
"""

from __future__ import annotations

from functools import lru_cache

from ringpipe.kernels.ring import _check_nranks, _check_pipeline, _check_root
from ringpipe.kernels.steps import StepTable, Transfer
from ringpipe.kernels.table_cache import bounded_table_cache

_ADVICE_TREE = "use fewer pipeline chunks or fewer in-process ranks"


def _all_reduce_rows(nranks: int, pipeline_chunks: int = 1) -> int:
    """Transfers of the double-tree all-reduce: each tree moves its K chunks over its
    N-1 edges twice (up, then down)."""
    return 4 * _check_pipeline(pipeline_chunks) * (_check_nranks(nranks) - 1)


def _rooted_rows(nranks: int, root: int, pipeline_chunks: int = 1) -> int:
    n = _check_nranks(nranks)
    _check_root(n, root)
    return _check_pipeline(pipeline_chunks) * (n - 1)


@lru_cache(maxsize=64)
def binary_tree_parents(nranks: int) -> tuple[int, ...]:
    """Parent of each rank in NCCL's binary tree rooted at rank 0 (-1 for the root)."""
    _check_nranks(nranks)
    parents = [-1] * nranks
    for r in range(1, nranks):
        bit = r & -r
        up = (r ^ bit) | (bit << 1)
        parents[r] = up if up < nranks else r ^ bit
    return tuple(parents)


@lru_cache(maxsize=64)
def double_binary_tree(nranks: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The parent arrays of NCCL's two complementary trees (-1 marks each root)."""
    t0 = binary_tree_parents(nranks)
    n = nranks
    if n % 2 == 0:  # mirror
        t1 = tuple(-1 if t0[n - 1 - r] < 0 else n - 1 - t0[n - 1 - r] for r in range(n))
    else:  # shift by one
        t1 = tuple(-1 if t0[(r - 1) % n] < 0 else (t0[(r - 1) % n] + 1) % n for r in range(n))
    return t0, t1


def _children(parents: tuple[int, ...]) -> list[list[int]]:
    kids: list[list[int]] = [[] for _ in parents]
    for r, p in enumerate(parents):
        if p >= 0:
            kids[p].append(r)
    return kids  # each list is in increasing rank order


def _heights_depths(parents: tuple[int, ...]) -> tuple[list[int], list[int], int]:
    kids = _children(parents)
    root = parents.index(-1)
    height = [0] * len(parents)
    depth = [0] * len(parents)
    order = [root]
    for r in order:  # breadth-first: parents before children
        for k in kids[r]:
            depth[k] = depth[r] + 1
            order.append(k)
    if len(order) != len(parents):
        raise ValueError("parent array is not a single tree")
    for r in reversed(order):
        height[r] = max((height[k] + 1 for k in kids[r]), default=0)
    return height, depth, root


def _reduce_up(parents: tuple[int, ...], chunks: range) -> list[Transfer]:
    height, _, _ = _heights_depths(parents)
    return [Transfer(k + height[r], r, parents[r], c, True)
            for k, c in enumerate(chunks) for r in range(len(parents)) if parents[r] >= 0]


def _broadcast_down(parents: tuple[int, ...], chunks: range, first_step: int) -> list[Transfer]:
    kids = _children(parents)
    _, depth, _ = _heights_depths(parents)
    return [Transfer(first_step + k + depth[r], r, child, c, False)
            for k, c in enumerate(chunks) for r in range(len(parents)) for child in kids[r]]


def _relabel(parents: tuple[int, ...], root: int) -> tuple[int, ...]:
    """Tree 0 moved so that ``root`` is its root: virtual rank v is real rank (v+root)%N."""
    n = len(parents)
    out = [-1] * n
    for v, p in enumerate(parents):
        out[(v + root) % n] = -1 if p < 0 else (p + root) % n
    return tuple(out)


@bounded_table_cache(_all_reduce_rows, _ADVICE_TREE)
def tree_all_reduce(nranks: int, pipeline_chunks: int = 1) -> StepTable:
    """Double-binary-tree all-reduce over ``2 * pipeline_chunks`` chunks."""
    k = pipeline_chunks
    rows: list[Transfer] = []
    halves = (range(k), range(k, 2 * k))
    for tree, chunks in zip(double_binary_tree(nranks), halves, strict=True):
        height, _, root = _heights_depths(tree)
        rows += _reduce_up(tree, chunks)
        rows += _broadcast_down(tree, chunks, height[root])
    return StepTable.from_transfers("tree_all_reduce", "all_reduce", nranks, 2 * k, rows)


@bounded_table_cache(_rooted_rows, _ADVICE_TREE)
def tree_broadcast(nranks: int, root: int, pipeline_chunks: int = 1) -> StepTable:
    """Pipelined binary-tree broadcast from ``root`` (tree 0 relabelled to that root)."""
    tree = _relabel(binary_tree_parents(nranks), root)
    rows = _broadcast_down(tree, range(pipeline_chunks), 0)
    return StepTable.from_transfers("tree_broadcast", "broadcast", nranks, pipeline_chunks,
                                    rows, root=root)


@bounded_table_cache(_rooted_rows, _ADVICE_TREE)
def tree_reduce(nranks: int, root: int, pipeline_chunks: int = 1) -> StepTable:
    """Pipelined binary-tree reduce to ``root``; other ranks keep partial results."""
    tree = _relabel(binary_tree_parents(nranks), root)
    rows = _reduce_up(tree, range(pipeline_chunks))
    return StepTable.from_transfers("tree_reduce", "reduce", nranks, pipeline_chunks, rows,
                                    root=root)
