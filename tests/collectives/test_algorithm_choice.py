"""The in-process ``algorithm="auto"`` choice comes from a cost model of this host."""

import ast
import pathlib

import numpy as np
import pytest

from ringpipe.collectives.api import auto_algorithm
from ringpipe.collectives.choice import (
    DEFAULT_HOST,
    HostModel,
    choose_host_algorithm,
    host_collective_time,
)
from ringpipe.kernels.registry import step_table


def test_time_is_overhead_plus_two_n_s_over_bandwidth():
    host = HostModel(memory_bandwidth=10e9, call_overhead=5e-6, transfer_overhead=1e-8)
    for algorithm in ("ring", "tree"):
        table = step_table("all_reduce", algorithm, 8)
        cost = host_collective_time("all_reduce", algorithm, 1 << 20, 8, host)
        fixed = 5e-6 + table.step.size * 1e-8
        assert cost.fixed_time == pytest.approx(fixed)
        assert cost.time == pytest.approx(fixed + 2 * 8 * (1 << 20) / 10e9)
    # the ring has 2N(N-1) transfers, the double binary tree far fewer
    assert host_collective_time("all_reduce", "ring", 8, 8).transfers == 2 * 8 * 7


def test_small_is_latency_bound_tree_large_keeps_the_default_ring():
    small, why = choose_host_algorithm("all_reduce", 1024, 8)
    assert small == "tree" and "latency-bound" in why and "host model" in why
    large, why = choose_host_algorithm("all_reduce", 64 << 20, 8)
    assert large == "ring" and "bandwidth-bound" in why and "default is kept" in why
    # a host where transfers cost nothing: every algorithm ties, the default stays
    free = HostModel(transfer_overhead=0.0)
    assert choose_host_algorithm("all_reduce", 1024, 8, free)[0] == "ring"


def test_auto_algorithm_accepts_buffers_sizes_and_a_host():
    bufs = [np.zeros(256, np.float32) for _ in range(8)]
    assert auto_algorithm("all_reduce", bufs) == auto_algorithm("all_reduce", 1024, 8) \
        == auto_algorithm("all_reduce", 256, 4, 8)
    slow_calls = HostModel(call_overhead=1.0)
    assert "1e+06 µs per call" in auto_algorithm("all_reduce", 1024, 8, host=slow_calls)[1]
    with pytest.raises(TypeError, match="auto_algorithm: give the rank buffers"):
        auto_algorithm("all_reduce")
    with pytest.raises(ValueError, match="auto_algorithm: nranks must be >= 1"):
        auto_algorithm("all_reduce", 1024, 0)
    with pytest.raises(ValueError, match="HostModel.memory_bandwidth must be > 0"):
        HostModel(memory_bandwidth=0)
    with pytest.raises(TypeError, match="host must be a HostModel"):
        host_collective_time("all_reduce", "ring", 8, 2, host="fast")
    assert DEFAULT_HOST == HostModel()


def test_collectives_and_host_cost_never_import_the_planner():
    root = pathlib.Path(__file__).resolve().parents[2] / "python" / "ringpipe" / "collectives"
    for path in sorted(root.glob("*.py")):
        name = path.name
        tree = ast.parse(path.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import)
                     for a in n.names}
        assert not any(m and m.startswith("ringpipe.cost") for m in imported), name


def test_a_refused_ring_table_leaves_tree_as_the_choice():
    """Past the ring table's size limit (over 1448 ranks) auto still picks an algorithm."""
    from ringpipe.collectives.choice import choose_host_algorithm

    algorithm, reason = choose_host_algorithm("all_reduce", 4096, 2000)
    assert algorithm == "tree" and "2000 in-process ranks" in reason
