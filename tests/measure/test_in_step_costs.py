"""What a step costs besides its arithmetic, measured in situ by calibrate (the
bookkeeping copies, an operation's cost inside a step, an MPI step's fixed cost) and how
the predictor charges each."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ringpipe.cost.executable.numpy_ops import stage_ops
from ringpipe.cost.executable.predict import PlanModel
from ringpipe.cost.hardware.calibration import Calibration
from ringpipe.cost.hardware.cluster import Link
from ringpipe.measure.calibrate.bookkeeping import (
    MAX_BANDWIDTH,
    MIN_BANDWIDTH,
    STEP_PROBE,
    copied_bytes,
    measure_bookkeeping,
)
from ringpipe.measure.calibrate.insitu import measure_step_call_overhead
from ringpipe.measure.calibrate.links import host_cluster
from ringpipe.measure.timer import QUICK
from ringpipe.mesh import Mesh
from ringpipe.plan.training import Plan

CLUSTER = host_cluster(1, Link(1e9, 0.0))
BASE = Calibration(cores=2, blas_threads=1, call_overhead=1e-6, memory_bandwidth=20e9,
                   action_overhead=20e-6)


def probe_plan() -> Plan:
    return Plan(STEP_PROBE, Mesh(dp=1, pp=1, tp=1), schedule="1f1b", microbatches=2)


def test_copied_bytes_are_what_the_predictor_charges_at_that_bandwidth():
    """Two bandwidths B1, B2: the predicted step differs by exactly
    copied_bytes · (1/B1 − 1/B2), so the residual calibrate turns into a bandwidth is
    charged back in full on the probe plan."""
    plan = probe_plan()
    times = [PlanModel(CLUSTER, replace(BASE, copy_bandwidth=b, tensor_overhead=0.0))
             .predict(plan, 4, "inproc", cpu_share=1.0).step_time for b in (5e9, 20e9)]
    assert times[0] - times[1] == pytest.approx(
        copied_bytes(plan) * (1 / 5e9 - 1 / 20e9), rel=1e-9)
    assert copied_bytes(plan) == 8 * 8 * STEP_PROBE.num_params()


def test_tensor_overhead_is_charged_per_tensor_and_rank():
    """Per pipeline rank its stages' tensors (shards in), and the assembly's pass over
    every TP rank's tensors."""
    plan = Plan(STEP_PROBE, Mesh(dp=1, pp=2, tp=2), schedule="1f1b", microbatches=2)
    tensors = sum(len(stage.param_shapes()) for stage in plan.stages)
    cost = [PlanModel(CLUSTER, replace(BASE, copy_bandwidth=1e12, tensor_overhead=t))
            .predict(plan, 4, "inproc", cpu_share=1.0).step_time for t in (0.0, 1e-3)]
    # in-process: T ranks of each stage copy their shards (T·tensors), the assembly
    # walks the T ranks' tensors once more
    assert cost[1] - cost[0] == pytest.approx(1e-3 * (2 * tensors + 2 * tensors), rel=1e-9)


def test_a_file_without_the_keys_prices_copies_on_the_operation_curve():
    plan = probe_plan()
    slow = replace(BASE, op_bandwidth=((1e3, 1e9), (1e8, 1e9)))
    fast = replace(BASE, op_bandwidth=((1e3, 1e10), (1e8, 1e10)))
    a, b = (PlanModel(CLUSTER, c).predict(plan, 4, "inproc", cpu_share=1.0).breakdown_s
            for c in (slow, fast))
    assert a["copies"] > b["copies"] > 0


def test_measure_bookkeeping_gives_bounded_constants():
    per_tensor, bandwidth = measure_bookkeeping(BASE, QUICK)
    assert 0.0 <= per_tensor < 1e-3
    assert MIN_BANDWIDTH <= bandwidth <= MAX_BANDWIDTH


def test_operations_are_charged_the_in_step_cost_when_measured():
    """step_call_overhead replaces call_overhead for every priced operation: the step
    grows by (operations) × the difference, in-process and under MPI alike."""
    plan = probe_plan()
    ops = stage_ops(STEP_PROBE, 1, STEP_PROBE.layers, True, True, 2)
    calls = sum(len(o.gemms) + sum(c for c, _ in o.mem)
                for o in (ops.forward, ops.backward_input, ops.backward_weight))
    tensors = sum(len(stage.param_shapes()) for stage in plan.stages)
    base = replace(BASE, copy_bandwidth=1e12, tensor_overhead=0.0)
    steps = [PlanModel(CLUSTER, replace(base, step_call_overhead=c))
             .predict(plan, 4, "inproc", cpu_share=1.0).step_time for c in (1e-6, 4e-6)]
    # 2 micro-batches' operations, and one bucket call per tensor
    assert steps[1] - steps[0] == pytest.approx(3e-6 * (2 * calls + tensors), rel=1e-9)
    assert BASE.op_overhead == BASE.call_overhead


def test_the_mpi_step_overhead_is_added_once_per_mpi_step():
    plan = probe_plan()
    for runtime, added in (("mpi", 2e-3), ("inproc", 0.0)):
        a, b = (PlanModel(CLUSTER, replace(BASE, mpi_step_overhead=o))
                .predict(plan, 4, runtime, cpu_share=1.0).step_time for o in (0.0, 2e-3))
        assert b - a == pytest.approx(added, abs=1e-15)


def test_measure_step_call_overhead_is_at_least_the_tight_loop_figure():
    cal = replace(BASE, call_overhead=0.5e-6)
    measured = measure_step_call_overhead(cal, QUICK)
    assert 0.5e-6 <= measured < 1e-3
