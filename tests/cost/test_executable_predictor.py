"""Predicted step time of executable plans (cost.executable, cost.numpy_ops) and the
``verify --cluster-file`` report."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import replace
from types import MappingProxyType

import pytest

from ringpipe.cli import main
from ringpipe.cost.clusterfile.load import load_cluster_file
from ringpipe.cost.clusterfile.writer import dumps
from ringpipe.cost.executable.numpy_ops import held_elements, stage_ops
from ringpipe.cost.executable.predict import PlanModel
from ringpipe.cost.executable.pricer import fresh_bytes
from ringpipe.cost.hardware.calibration import Calibration
from ringpipe.cost.hardware.cluster import GB, Link
from ringpipe.cost.hardware.gemm_curve import GemmCurve
from ringpipe.kernels.heap import HeapPolicy
from ringpipe.measure.step_time import REPEATS
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.plan.training import Plan

US = 1e-6


def predict_plan(plan, batch_size, cluster, calibration, runtime, **kw):
    return PlanModel(cluster, calibration).predict(plan, batch_size, runtime, **kw)


def calibrated(path):
    return load_cluster_file(path).calibrated()


def file_dict(bandwidth_gbs: float, latency_us: float = 0.0, overhead_us: float = 2.0,
              share: float = 1.0) -> dict:
    """A calibrated cluster file as ``ringpipe calibrate`` writes it, numbers chosen."""
    link = {"bandwidth_gbs": bandwidth_gbs, "latency_us": latency_us}
    rows = [{"runtime": rt, "algorithm": a, "ranks": 2, **link}
            for rt in ("inproc", "mpi") for a in ("ring", "tree")]
    return {"name": "test", "gpus_per_node": 2, "peak_tflops": 0.05, "memory_gib": 4.0,
            "memory_bandwidth_gbs": 10.0, "achievable_fraction": 1.0,
            "intra_node": dict(link), "inter_node": dict(link),
            "kernels": {"sm_count": 1, "tile_m": 1, "tile_n": 1, "launch_overhead_us": 2.0},
            "measured": {"host": "test", "cores": 2, "blas_threads": 1,
                         "call_overhead_us": overhead_us, "memory_bandwidth_gbs": 10.0,
                         "transcendental_ns": 10.0,
                         "cpu_share": {"inproc": share, "mpi": share, "mpi_processes": 2},
                         "op_bandwidth": {"bytes": [1e4, 1e7], "gbs": [40.0, 10.0]},
                         "gemm": {"float64": {"peak_gflops": 40.0, "m0": 10.0, "n0": 10.0,
                                              "k0": 10.0}},
                         "p2p": {"inproc": dict(link), "mpi": dict(link)},
                         "allreduce": rows}}


@pytest.fixture
def write(tmp_path):
    def _write(name: str, data: dict):
        path = tmp_path / name
        path.write_text(dumps(data))
        return path
    return _write


def plan_of(tp: int, pp: int, dp: int, schedule: str = "1f1b", m: int = 4,
            hidden: int = 32) -> Plan:
    cfg = ModelConfig(layers=4, hidden=hidden, heads=4, seq=8)
    return Plan(cfg, Mesh(dp=dp, pp=pp, tp=tp), schedule=schedule, microbatches=m)


def comm(pred) -> float:
    return pred.tp_comm_time + pred.pp_comm_time + pred.dp_comm_time


@pytest.mark.parametrize("runtime", ["inproc", "mpi"])
@pytest.mark.parametrize("mesh", [(2, 1, 1), (1, 1, 2), (1, 2, 1)])
def test_doubled_bandwidth_halves_communication(write, runtime, mesh):
    plan = plan_of(*mesh)
    slow = calibrated(write("slow.toml", file_dict(1.0, overhead_us=0.0)))
    fast = calibrated(write("fast.toml", file_dict(2.0, overhead_us=0.0)))
    a = predict_plan(plan, 16, *slow, runtime)
    b = predict_plan(plan, 16, *fast, runtime)
    if runtime == "mpi" and mesh[1] == 2:  # PP messages hide under the pipeline
        assert b.step_time <= a.step_time
        return
    assert comm(a) > 0
    assert comm(b) == pytest.approx(comm(a) / 2, rel=1e-9)
    assert b.compute_time == pytest.approx(a.compute_time, rel=1e-9)


def test_in_process_runs_ranks_one_after_another(write):
    cluster, cal = calibrated(write("c.toml", file_dict(5.0)))
    one = predict_plan(plan_of(1, 1, 1), 8, cluster, cal, "inproc")
    two = predict_plan(plan_of(1, 1, 2), 16, cluster, cal, "inproc")
    assert two.compute_time == pytest.approx(2 * one.compute_time, rel=1e-12)
    pp_in = predict_plan(plan_of(1, 2, 1), 8, cluster, cal, "inproc")
    pp_mpi = predict_plan(plan_of(1, 2, 1), 8, cluster, cal, "mpi")
    assert pp_mpi.compute_time < pp_in.compute_time  # two ranks at once under MPI


def test_cpu_share_stretches_compute(write):
    full = calibrated(write("a.toml", file_dict(5.0, share=1.0)))
    half = calibrated(write("b.toml", file_dict(5.0, share=0.5)))
    plan = plan_of(1, 1, 1)
    a, b = (predict_plan(plan, 8, *c, "inproc") for c in (full, half))
    assert b.step_time == pytest.approx(2 * a.step_time, rel=1e-12)
    assert b.oversubscription == 2.0


def test_unmeasured_process_count_is_bounded_by_the_cores():
    cal = Calibration(cores=2, blas_threads=1, call_overhead=1e-6, memory_bandwidth=1e10,
                      share_inproc=0.9, share_mpi=(2, 0.7))
    assert cal.cpu_share(2) == 0.7
    assert cal.cpu_share(4) == pytest.approx(0.5)
    assert cal.cpu_share(1) == 0.9


def test_allreduce_link_falls_back_to_nearest_measured_group(write):
    cluster, cal = calibrated(write("c.toml", file_dict(5.0)))
    cal = replace(cal, allreduce=MappingProxyType({
        ("mpi", "ring", 2): Link(1 * GB, 1e-6), ("mpi", "ring", 4): Link(4 * GB, 1e-6)}))
    assert cal.allreduce_link("mpi", "ring", 3, cluster).bandwidth == 1 * GB
    assert cal.allreduce_link("mpi", "ring", 8, cluster).bandwidth == 4 * GB
    assert cal.allreduce_link("mpi", "tree", 2, cluster) == cal.p2p["mpi"]


def test_block_gemm_flops_follow_megatron():
    """Forward GEMM FLOPs of a block on one TP rank: (24·T·h² + 4·b·s²·h) / t."""
    cfg = ModelConfig(layers=1, hidden=64, heads=4, seq=16)
    for tp in (1, 2, 4):
        ops = stage_ops(cfg, tp, 1, False, False, 3)
        flops = sum(2 * m * n * k * b for m, n, k, b in ops.forward.gemms)
        tokens = 3 * 16
        assert flops == (24 * tokens * 64**2 + 4 * 3 * 16**2 * 64) // tp
        assert len(ops.forward.allreduces) == 2 and len(ops.backward_input.allreduces) == 2
        bwd = sum(2 * m * n * k * b for m, n, k, b in
                  ops.backward_input.gemms + ops.backward_weight.gemms)
        assert bwd == 2 * flops


def test_mpi_pipeline_bounded_by_its_stages(write):
    cluster, cal = calibrated(write("c.toml", file_dict(1000.0, overhead_us=1.0)))
    for schedule in ("gpipe", "1f1b", "zb-h1", "interleaved-1f1b"):
        plan = plan_of(1, 2, 1, schedule, m=4)
        one = predict_plan(plan_of(1, 1, 1, "1f1b", m=4), 8, cluster, cal, "mpi")
        two = predict_plan(plan, 8, cluster, cal, "mpi")
        assert one.compute_time / 2 < two.compute_time + two.pp_comm_time <= \
            one.compute_time * 1.5, schedule


def test_bad_runtime_is_refused(write):
    cluster, cal = calibrated(write("c.toml", file_dict(5.0)))
    with pytest.raises(ValueError, match="runtime"):
        predict_plan(plan_of(1, 1, 1), 8, cluster, cal, "gpu")
    with pytest.raises(ValueError, match="divisible|smaller"):
        predict_plan(plan_of(1, 1, 1), 3, cluster, cal, "inproc")
    assert GemmCurve(1e9).efficiency(1, 1, 1) == 1.0


def test_verify_reports_measured_and_predicted_step_time(write, capsys):
    path = write("c.toml", file_dict(5.0))
    code = main(["verify", "--backend", "numpy", "--pp", "2", "--microbatches", "2",
                 "--cluster-file", str(path), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["ok"]
    assert len(doc["step_time_samples_s"]) == REPEATS
    assert doc["step_time_s"] == min(doc["step_time_samples_s"]) > 0
    assert doc["predicted_over_measured"] == pytest.approx(
        doc["predicted_step_time_s"] / doc["step_time_s"])
    assert doc["runtime"] == "inproc"
    # in-process: the best share probed before the steps, paired with the best step
    assert doc["cpu_share_now"] == max(doc["cpu_share_samples"])


def test_verify_rejects_an_unusable_cluster_file(tmp_path, capsys):
    assert main(["verify", "--backend", "numpy", "--cluster-file",
                 str(tmp_path / "none.toml")]) == 2
    assert main(["verify", "--backend", "mpi", "--np", "1", "--cluster-file",
                 str(tmp_path / "none.toml")]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "Traceback" not in err


@pytest.mark.mpi
def test_verify_mpi_reports_both_step_times(write):
    import subprocess
    import sys

    path = write("c.toml", file_dict(5.0))
    job = subprocess.run([sys.executable, "-m", "ringpipe", "verify", "--backend", "mpi",
                          "--np", "2", "--pp", "2", "--cluster-file", str(path), "--json"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert job.returncode == 0, job.stderr
    doc = json.loads(job.stdout[job.stdout.index("{"):])
    assert doc["runtime"] == "mpi" and doc["bitwise_inproc"]
    assert doc["step_time_s"] == min(doc["step_time_samples_s"])
    # MPI: the median of the least-served rank's shares, not the best of them
    assert doc["cpu_share_now"] == statistics.median(doc["cpu_share_samples"])
    # the prediction is the predictor's, at the CPU share measured during the run
    plan = plan_of(1, 2, 1, "1f1b", m=2)
    cluster, cal = calibrated(path)
    again = predict_plan(plan, 4, cluster, cal, "mpi", cpu_share=doc["cpu_share_now"])
    assert doc["predicted_step_time_s"] == pytest.approx(again.step_time, rel=1e-12)
    assert doc["predicted_over_measured"] == pytest.approx(
        doc["predicted_step_time_s"] / doc["step_time_s"])


def test_held_activations_counted_by_hand():
    """One block, h = 8, 2 heads, s = 4, f = 32, b = 1 (T = 4 rows): MLP half T·h + T
    (norm) + T·h (its output) + 3·T·f; attention half 2·T·h + T + 4·T·a·d + b·a·s²."""
    cfg = ModelConfig(layers=1, hidden=8, heads=2, seq=4)
    assert held_elements(cfg, 1, 1, False, 1) == (32 + 4 + 32 + 384) + (64 + 4 + 128 + 32)
    # tp = 2: f/t = 16, one local head of width 4
    assert held_elements(cfg, 2, 1, False, 1) == (32 + 4 + 32 + 192) + (64 + 4 + 64 + 16)
    # the last stage adds its final norm (T·h + T), output and head output/gradient
    assert held_elements(cfg, 1, 1, True, 1) == 680 + (32 + 4 + 32) + 2 * 32
    assert stage_ops(cfg, 1, 1, False, False, 1).held == 680
    assert held_elements(cfg, 1, 3, False, 2) == 3 * held_elements(cfg, 1, 1, False, 2)


def test_fresh_bytes_follow_the_schedule():
    """gpipe holds all m forwards before the first backward, 1f1b only pp - p."""
    held = [100.0, 10.0]
    gpipe = fresh_bytes(plan_of(1, 2, 1, "gpipe", m=4), held, 8)
    f1b1 = fresh_bytes(plan_of(1, 2, 1, "1f1b", m=4), held, 8)
    assert [g[0] for g in gpipe] == [4 * 100 * 8, 4 * 10 * 8]
    assert [g[0] for g in f1b1] == [2 * 100 * 8, 1 * 10 * 8]
    plan = plan_of(1, 2, 1)
    params = [sum(math.prod(x) for x in plan.stages[s].param_shapes().values())
              for s in range(2)]
    assert [g[1] for g in f1b1] == [8 * params[0], 8 * params[1]]
    assert all(g[1] == g[2] for g in f1b1)
    tp2 = fresh_bytes(plan_of(2, 1, 1, m=4), [1.0], 8)
    # split matrices halve; norms, biases of row-parallel layers, in/out layers do not
    assert 8 * sum(params) / 2 < tp2[0][1] < 8 * sum(params)


def test_fresh_memory_cost_in_the_prediction(write):
    """Without the retained heap a step first-touches its peak activations, shards and
    gradients; with it (the runtimes' default) it touches nothing new, and nothing is
    charged, whatever the file's per-byte cost."""
    plan = plan_of(1, 1, 1, "gpipe", m=4)
    faulting = HeapPolicy(retain=False)
    data = file_dict(5.0)
    base = predict_plan(plan, 8, *calibrated(write("a.toml", data)), "inproc", heap=faulting)
    data["measured"]["fresh_memory_ns_per_byte"] = 2.0
    cluster, cal = calibrated(write("b.toml", data))
    assert cal.fresh_memory == pytest.approx(2e-9)
    with_faults = predict_plan(plan, 8, cluster, cal, "inproc", heap=faulting)
    held = stage_ops(plan.config, 1, 4, True, True, 2).held
    params = plan.config.num_params()
    expected = 2e-9 * 8 * (4 * held + 2 * params)  # peak of 4 forwards, shards, grads
    assert with_faults.fresh_memory_time == pytest.approx(expected, rel=1e-12)
    assert with_faults.step_time - base.step_time == pytest.approx(expected, rel=1e-9)
    mpi = predict_plan(plan, 8, cluster, cal, "mpi", heap=faulting)
    mpi0 = predict_plan(plan, 8, *calibrated(write("a.toml", file_dict(5.0))), "mpi",
                        heap=faulting)
    # rank 0 also receives and assembles every gradient
    assert mpi.step_time - mpi0.step_time == pytest.approx(expected + 2e-9 * 8 * 2 * params,
                                                           rel=1e-9)
    for runtime in ("inproc", "mpi"):
        retained = predict_plan(plan, 8, cluster, cal, runtime)
        assert retained.fresh_memory_time == 0.0
        assert retained.assumptions["heap_retained"] is True
        assert retained.step_time < predict_plan(plan, 8, cluster, cal, runtime,
                                                 heap=faulting).step_time
