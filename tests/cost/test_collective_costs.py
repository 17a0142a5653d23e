"""α-β collective costs read off the step tables."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringpipe.cost.hardware.cluster import GB, Cluster, Link, cluster_preset
from ringpipe.cost.hardware.collectives import (
    CollectiveModel,
    _ring_profile,
    choose_algorithm,
    profile_from_table,
    tree_chunks,
)
from ringpipe.kernels import registry
from ringpipe.kernels.registry import step_table
from ringpipe.kernels.ring import ring_all_reduce

A100 = cluster_preset("dgx-a100", 4)
ALPHA, BETA = A100.intra.latency, 1 / A100.intra.bandwidth


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8])
def test_ring_all_reduce_is_the_textbook_formula(n):
    s = 840 * 2**10  # divisible by every n here
    cost = CollectiveModel(A100).cost("all_reduce", "ring", s, n)
    assert cost.nsteps == 2 * (n - 1) and not cost.spans_nodes
    assert cost.time == pytest.approx(2 * (n - 1) * ALPHA + 2 * (n - 1) / n * s * BETA,
                                      rel=1e-12)
    assert cost.latency_time == pytest.approx(2 * (n - 1) * ALPHA)


@pytest.mark.parametrize("collective", ["reduce_scatter", "all_gather"])
@pytest.mark.parametrize("n", [2, 4, 7])
def test_reduce_scatter_and_all_gather_cost_n_minus_1_over_n(collective, n):
    s = 7 * 4 * 2**20
    cost = CollectiveModel(A100).cost(collective, "ring", s, n)
    assert cost.time == pytest.approx((n - 1) * ALPHA + (n - 1) / n * s * BETA, rel=1e-12)


def test_profile_charges_the_bytes_the_table_sends():
    table = ring_all_reduce(6)
    prof = profile_from_table(table, [0] * 6)
    count = 6 * 1000
    per_rank = table.bytes_sent(count, 4)
    # every rank sends one chunk per step, so the busiest rank's load is everyone's
    assert prof.intra.sum() * count * 4 / table.nchunks == per_rank.max() == per_rank.min()
    assert not prof.inter.any()


def test_group_spanning_nodes_pays_the_inter_node_link():
    model = CollectiveModel(A100)
    s = 64 * 2**20
    inside = model.cost("all_reduce", "ring", s, [0, 1, 2, 3])
    across = model.cost("all_reduce", "ring", s, [0, 8, 16, 24])  # one GPU per node
    assert across.spans_nodes and not inside.spans_nodes
    inter = A100.inter
    assert across.time == pytest.approx(6 * inter.latency + 1.5 * s / inter.bandwidth)
    assert across.time > 10 * inside.time
    # 8 members per node: NCCL spreads the crossing hop over the node's 8 NICs
    full = model.cost("all_reduce", "ring", s, 32)
    hop = max(A100.intra.latency + s / 32 / A100.intra.bandwidth,
              inter.latency + s / 32 / (8 * inter.bandwidth))
    assert full.time == pytest.approx(62 * hop)


@pytest.mark.parametrize("nodes", [
    [0] * 12, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3], [0, 1, 2, 3] * 3, [0, 1] * 6,
    [5, 5, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1]])
@pytest.mark.parametrize("collective", ["all_reduce", "reduce_scatter", "all_gather"])
def test_closed_ring_profile_equals_the_table(nodes, collective):
    table = step_table(collective, "ring", len(nodes))
    want = profile_from_table(table, nodes)
    got = _ring_profile(collective, nodes)
    assert got.nchunks == want.nchunks
    assert np.array_equal(got.intra, want.intra) and np.array_equal(got.inter, want.inter)


def test_large_rings_use_the_closed_profile_without_building_the_table():
    big = cluster_preset("dgx-a100", 64)  # 512 GPUs
    cost = CollectiveModel(big).cost("all_reduce", "ring", 2**30, 512)
    hop = max(big.intra.latency + 2**30 / 512 / big.intra.bandwidth,
              big.inter.latency + 2**30 / 512 / (8 * big.inter.bandwidth))
    assert cost.time == pytest.approx(2 * 511 * hop)


def test_tree_latency_grows_with_log_n_and_ring_with_n():
    one_node = Cluster("flat", 1, 256, 1e15, 1e11, 1e12, Link(100 * GB, 5e-6),
                       Link(10 * GB, 5e-6))
    model = CollectiveModel(one_node)
    tiny = 8.0  # bytes: pure latency
    for n in (16, 64, 256):
        tree = model.cost("all_reduce", "tree", tiny, n, pipeline_chunks=1)
        ring = model.cost("all_reduce", "ring", tiny, n)
        assert ring.nsteps == 2 * (n - 1)
        assert tree.nsteps <= 2 * math.ceil(math.log2(n)) + 2
        assert tree.time == pytest.approx(tree.nsteps * 5e-6, rel=1e-3)  # latency-bound
    assert tree.time < ring.time / 20  # at n = 256


def test_tree_pipeline_chunks_grow_with_the_size():
    ks = [tree_chunks(s, 8, A100) for s in (2**10, 2**20, 2**26, 2**30)]
    assert ks[0] == 1 and ks == sorted(ks) and ks[-1] >= 16
    # pipelining pays: at 1 GiB, K=1 is far slower than the chosen K
    model = CollectiveModel(A100)
    assert model.cost("all_reduce", "tree", 2**30, 8).time < \
        0.6 * model.cost("all_reduce", "tree", 2**30, 8, pipeline_chunks=1).time


def test_a_new_algorithm_is_priced_from_its_table(monkeypatch):
    algorithms = {**registry.ALGORITHMS["all_reduce"], "ring_copy": ring_all_reduce}
    monkeypatch.setitem(registry.ALGORITHMS, "all_reduce", algorithms)
    model = CollectiveModel(A100)
    ring = model.cost("all_reduce", "ring", 2**20, 8)
    copy = model.cost("all_reduce", "ring_copy", 2**20, 8)
    assert copy.time == ring.time and copy.nsteps == ring.nsteps
    assert model.best("all_reduce", 2**24, 8).algorithm in algorithms


def test_choose_algorithm_picks_tree_when_small_and_ring_when_large():
    small = choose_algorithm("all_reduce", 4096, 8, A100)
    large = choose_algorithm("all_reduce", 2**30, 8, A100)
    assert small[0] == "tree" and "latency-bound" in small[1] and "ring" in small[1]
    assert large[0] == "ring" and "bandwidth-bound" in large[1]
    algo, why = choose_algorithm("reduce_scatter", 2**20, 4, A100)
    assert algo == "ring" and "only" in why
    four = cluster_preset("dgx-a100", 4)
    assert choose_algorithm("all_reduce", 2**20, [0, 8, 16, 24], four)[1].count(
        "across nodes") == 1
    with pytest.raises(TypeError, match="cluster must be a Cluster"):
        choose_algorithm("all_reduce", 2**20, 8, None)


def test_nic_sharing_divides_the_node_injection_bandwidth():
    """pcie-a100: 2 NICs (25 GB/s each) for 8 GPUs: alone a GPU crosses at 25 GB/s, with
    all eight crossing at once each gets 50/8 = 6.25 GB/s (the ring is then 4x slower)."""
    pcie = cluster_preset("pcie-a100", 2)
    assert pcie.crossing_bandwidth(1) == 25 * GB and pcie.crossing_bandwidth(8) == 6.25 * GB
    model = CollectiveModel(pcie)
    alone = model.cost("all_reduce", "ring", 2**30, [0, 8])
    shared = model.cost("all_reduce", "ring", 2**30, [0, 8], concurrent_per_node=8)
    # 2 ranks, 2 steps of S/2 bytes over the inter-node link each way
    assert alone.time == pytest.approx(2 * (6e-6 + 2**29 / (25 * GB)))
    assert shared.time == pytest.approx(2 * (6e-6 + 2**29 / (6.25 * GB)))
    dgx = cluster_preset("dgx-a100", 2)  # one NIC per GPU: sharing changes nothing
    assert dgx.crossing_bandwidth(1) == dgx.crossing_bandwidth(8) == 25 * GB


def test_bad_collective_arguments():
    model = CollectiveModel(A100)
    with pytest.raises(ValueError, match="unknown 'allreduce'"):
        model.cost("allreduce", "ring", 10, 4)
    with pytest.raises(ValueError, match="reduce_scatter has no 'tree'"):
        model.cost("reduce_scatter", "tree", 10, 4)
    with pytest.raises(ValueError, match="gpu 40 out of range"):
        model.cost("all_reduce", "ring", 10, [0, 40])
    with pytest.raises(ValueError, match="repeated"):
        model.cost("all_reduce", "ring", 10, [1, 1])
    with pytest.raises(ValueError, match="nbytes"):
        model.cost("all_reduce", "ring", -1, 4)
    with pytest.raises(ValueError, match="unknown 'gather'"):
        choose_algorithm("gather", 10, 4, A100)
    assert model.cost("all_reduce", "ring", 10, 1).time == 0.0


@settings(max_examples=40)
@given(st.lists(st.integers(0, 3), min_size=2, max_size=20),
       st.sampled_from(["all_reduce", "reduce_scatter", "all_gather"]))
def test_closed_ring_profile_equals_the_table_for_any_placement(nodes, collective):
    want = profile_from_table(step_table(collective, "ring", len(nodes)), nodes)
    got = _ring_profile(collective, nodes)
    assert np.array_equal(got.intra, want.intra) and np.array_equal(got.inter, want.inter)


@settings(max_examples=40)
@given(st.sets(st.integers(0, 31), min_size=2, max_size=12),
       st.sampled_from([(c, a) for c, algos in registry.ALGORITHMS.items() for a in algos]),
       st.floats(1.0, 2.0**30), st.floats(1.0, 4.0))
def test_costs_are_positive_and_grow_with_the_size(ranks, pair, nbytes, factor):
    collective, algorithm = pair
    model = CollectiveModel(A100)
    group = sorted(ranks)
    small = model.cost(collective, algorithm, nbytes, group)
    large = model.cost(collective, algorithm, nbytes * factor, group)
    assert 0 < small.latency_time <= small.time <= large.time * (1 + 1e-12)
    assert small.spans_nodes == (len({r // 8 for r in group}) > 1)
