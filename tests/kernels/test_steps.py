"""Step tables: shape, well-formedness, and symbolic correctness for every N."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringpipe.kernels.registry import ALGORITHMS, step_table
from ringpipe.kernels.ring import ring_all_reduce
from ringpipe.kernels.steps import StepTable, Transfer, chunk_bounds
from ringpipe.kernels.tree import binary_tree_parents, double_binary_tree, tree_all_reduce

NS = list(range(1, 34))


@given(st.integers(0, 10**6), st.integers(1, 64))
def test_chunk_bounds_partition_exactly(count, nchunks):
    b = chunk_bounds(count, nchunks)
    sizes = np.diff(b)
    assert b[0] == 0 and b[-1] == count and len(b) == nchunks + 1
    assert sizes.min() >= 0 and sizes.max() - sizes.min() <= 1
    assert list(sizes) == sorted(sizes, reverse=True)  # longer chunks first


def test_chunk_bounds_rejects_bad_arguments():
    with pytest.raises(ValueError, match="count"):
        chunk_bounds(-1, 2)
    with pytest.raises(ValueError, match="nchunks"):
        chunk_bounds(5, 0)


def _start(n, nchunks, owner=None):
    """Initial contribution sets: every rank holds its own input in every chunk."""
    return [[frozenset([r]) if owner is None or owner[c] == r else frozenset()
             for c in range(nchunks)] for r in range(n)]


@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("algorithm", ["ring", "tree"])
def test_all_reduce_tables_reduce_everything_once(n, algorithm):
    for k in (1, 3):
        table = step_table("all_reduce", algorithm, n, pipeline_chunks=k)
        final = table.contributions(_start(n, table.nchunks))
        assert all(cell == frozenset(range(n)) for row in final for cell in row)


@pytest.mark.parametrize("n", NS)
def test_ring_step_counts(n):
    t = ring_all_reduce(n)
    assert t.nsteps == 2 * (n - 1) and len(t) == 2 * (n - 1) * n and t.nchunks == n
    assert step_table("reduce_scatter", "ring", n).nsteps == n - 1
    assert step_table("all_gather", "ring", n).nsteps == n - 1
    for step in t.steps():  # every rank sends exactly once and receives exactly once a step
        assert sorted(x.src for x in step) == list(range(n))
        assert sorted(x.dst for x in step) == list(range(n))


@pytest.mark.parametrize("n", NS)
def test_reduce_scatter_and_all_gather_tables(n):
    rs = step_table("reduce_scatter", "ring", n)
    final = rs.contributions(_start(n, n))
    for r in range(n):
        assert final[r][rs.chunk_owner.index(r)] == frozenset(range(n))
    ag = step_table("all_gather", "ring", n)
    final = ag.contributions(_start(n, n, owner=ag.chunk_owner))
    assert all(cell == frozenset([ag.chunk_owner[c]]) for row in final
               for c, cell in enumerate(row))


@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("algorithm", ["ring", "tree"])
def test_rooted_tables(n, algorithm):
    for root in sorted({0, n // 2, n - 1}):
        bc = step_table("broadcast", algorithm, n, root=root, pipeline_chunks=2)
        owner = [root] * bc.nchunks
        final = bc.contributions(_start(n, bc.nchunks, owner=owner))
        assert all(cell == frozenset([root]) for row in final for cell in row)
        rd = step_table("reduce", algorithm, n, root=root, pipeline_chunks=2)
        final = rd.contributions(_start(n, rd.nchunks))
        assert all(cell == frozenset(range(n)) for cell in final[root])


@pytest.mark.parametrize("n", NS)
def test_double_binary_tree_shape(n):
    for parents in double_binary_tree(n):
        assert parents.count(-1) == 1
        kids = [sum(1 for p in parents if p == r) for r in range(n)]
        assert max(kids) <= 2  # binary
        depth = [0] * n
        for r in range(n):  # walk up: no cycles, depth <= ceil(log2 n)
            x, d = r, 0
            while parents[x] >= 0:
                x, d = parents[x], d + 1
                assert d <= n
            depth[r] = d
        assert max(depth) <= max(1, math.ceil(math.log2(n))) if n > 1 else max(depth) == 0


def test_binary_tree_matches_nccl_formula_examples():
    # rank 0 is the root; parent of r is (r ^ bit) | (bit << 1), or r ^ bit if out of range
    assert binary_tree_parents(8) == (-1, 2, 4, 2, 0, 6, 4, 6)
    assert binary_tree_parents(5) == (-1, 2, 4, 2, 0)
    t0, t1 = double_binary_tree(8)  # even: mirror
    assert t1 == tuple(-1 if t0[7 - r] < 0 else 7 - t0[7 - r] for r in range(8))


@pytest.mark.parametrize("n", [2, 4, 8, 16, 32])
def test_double_tree_is_complementary_for_powers_of_two(n):
    t0, t1 = double_binary_tree(n)
    interior0 = {p for p in t0 if p >= 0}
    interior1 = {p for p in t1 if p >= 0}
    assert not (interior0 & interior1)  # each rank is interior in at most one tree


@pytest.mark.parametrize("n", [8, 16, 32])
def test_tree_latency_is_logarithmic(n):
    assert tree_all_reduce(n).nsteps <= 2 * math.ceil(math.log2(n))
    assert ring_all_reduce(n).nsteps == 2 * (n - 1)


def test_tree_pipelines_chunks():
    one, four = tree_all_reduce(8, 1), tree_all_reduce(8, 4)
    assert four.nchunks == 8 and four.nsteps == one.nsteps + 3


def test_table_check_catches_conflicts():
    rows = [Transfer(0, 0, 1, 0, True), Transfer(0, 1, 2, 0, True)]  # rank 1 chunk 0 r+w
    with pytest.raises(ValueError, match="both sent and received"):
        StepTable.from_transfers("bad", "all_reduce", 3, 1, rows)
    with pytest.raises(ValueError, match="sends to itself"):
        StepTable.from_transfers("bad", "all_reduce", 2, 1, [Transfer(0, 1, 1, 0, True)])
    with pytest.raises(ValueError, match="out of range"):
        StepTable.from_transfers("bad", "all_reduce", 2, 1, [Transfer(0, 0, 2, 0, True)])
    double = [Transfer(0, 0, 2, 0, True), Transfer(0, 1, 2, 0, False)]
    with pytest.raises(ValueError, match="written twice"):
        StepTable.from_transfers("bad", "all_reduce", 3, 1, double)


def test_symbolic_run_detects_double_counting():
    rows = [Transfer(0, 0, 1, 0, True), Transfer(1, 1, 0, 0, True)]
    t = StepTable.from_transfers("bad", "all_reduce", 2, 1, rows)
    with pytest.raises(ValueError, match="twice"):
        t.contributions(_start(2, 1))


def test_tables_are_immutable_and_registry_rejects_unknowns():
    t = ring_all_reduce(4)
    with pytest.raises(ValueError):
        t.src[0] = 3
    with pytest.raises(ValueError, match="unknown algorithm"):
        step_table("all_reduce", "butterfly", 4)
    with pytest.raises(ValueError, match="unknown collective"):
        step_table("all_to_some", "ring", 4)
    with pytest.raises(ValueError, match="all_to_all: unknown algorithm 'ring'"):
        step_table("all_to_all", "ring", 4)
    assert set(ALGORITHMS["all_reduce"]) == {"ring", "tree"}


@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_bytes_sent_matches_alpha_beta_volume(n):
    size = 8 * 1000 * n  # divisible by n
    ring = ring_all_reduce(n).bytes_sent(size // 8, 8)
    assert list(ring) == [2 * (n - 1) * size // n] * n  # 2(N-1)/N · S per rank
    tree = tree_all_reduce(n).bytes_sent(size // 8, 8)
    assert tree.sum() == 2 * 2 * (n - 1) * (size // 2)  # each tree: N-1 edges up and down
