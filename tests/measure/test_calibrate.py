"""ringpipe calibrate: curve and α-β fits, step links, the TOML file's round trip, CLI."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import tomllib

from ringpipe.cli import main
from ringpipe.cost import read_cluster
from ringpipe.cost.clusterfile.load import load_cluster_file
from ringpipe.cost.clusterfile.writer import dumps
from ringpipe.cost.hardware.cluster import Link
from ringpipe.cost.hardware.collectives import CollectiveModel
from ringpipe.cost.hardware.gemm_curve import GemmCurve, fit_gemm_curve
from ringpipe.measure.calibrate import compute, links, mpi_probe
from ringpipe.measure.calibrate.run import CalibrateOptions, calibrate
from ringpipe.measure.calibrate.summary import summary
from ringpipe.measure.timer import Budget, cpu_time, sustained_time

GRID = [(m, n, k) for m in (8, 32, 256) for n in (16, 128, 512) for k in (4, 64, 1024)]


def test_gemm_curve_fit_recovers_known_parameters():
    truth = GemmCurve(40e9, 12.0, 7.0, 30.0, fixed=2e-6)
    seconds = [truth.fixed + truth.time(*s) for s in GRID]
    got = fit_gemm_curve(GRID, seconds)
    for name in ("peak_flops", "m0", "n0", "k0", "fixed"):
        assert math.isclose(getattr(got, name), getattr(truth, name), rel_tol=1e-6), name


def test_gemm_curve_fit_drops_a_negative_term():
    truth = GemmCurve(10e9, 0.0, 20.0, 5.0)  # no M dependence
    seconds = [truth.time(*s) * (1 + 0.01 * ((i % 3) - 1)) for i, s in enumerate(GRID)]
    got = fit_gemm_curve(GRID, seconds)
    assert got.m0 >= 0 and got.fixed >= 0
    assert got.efficiency(1e9, 1e9, 1e9) == pytest.approx(1.0, abs=1e-6)
    assert got.peak_flops == pytest.approx(10e9, rel=0.05)


def test_gemm_curve_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 4"):
        fit_gemm_curve(GRID[:3], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="seconds"):
        fit_gemm_curve(GRID[:4], [1.0, -1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="peak_flops"):
        GemmCurve(0.0)
    with pytest.raises(TypeError, match="m0"):
        GemmCurve(1.0, "x")  # type: ignore[arg-type]


def test_alpha_beta_fit_and_clipping():
    sizes = [1 << 10, 1 << 14, 1 << 18, 1 << 22]
    fit = links.fit_alpha_beta(sizes, [3e-6 + n / 2e9 for n in sizes])
    assert fit.alpha == pytest.approx(3e-6, rel=1e-9)
    assert fit.bandwidth == pytest.approx(2e9, rel=1e-9)
    pure = links.fit_alpha_beta(sizes, [n / 1e9 for n in sizes])
    assert pure.alpha >= 0 and pure.bandwidth == pytest.approx(1e9, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        links.fit_alpha_beta([1], [1.0])
    assert not fit.degenerate and not pure.degenerate


def test_a_fit_whose_times_do_not_grow_is_bounded_and_flagged():
    # an oversubscribed run: the 4 MiB message was faster than the 1 KiB one
    sizes = [1 << 10, 1 << 16, 1 << 22]
    fit = links.fit_alpha_beta(sizes, [40e-6, 30e-6, 20e-6])
    assert fit.degenerate
    assert fit.beta == pytest.approx(20e-6 / (1 << 22))  # the largest message, all transfer
    assert fit.bandwidth == pytest.approx((1 << 22) / 20e-6)  # finite, not 1e291
    assert fit.alpha == pytest.approx(20e-6)


@pytest.mark.parametrize("algorithm", ["ring", "tree"])
@pytest.mark.parametrize("ranks", [2, 3, 4])
def test_step_link_reproduces_the_measured_allreduce(algorithm, ranks):
    fit = links.AlphaBeta(40e-6, 1 / 3e9)
    step = links.step_link(fit, algorithm, ranks)
    model = CollectiveModel(links.host_cluster(ranks, step))
    for nbytes in (1024, 1 << 20, 1 << 24):
        t = model.cost("all_reduce", algorithm, nbytes, ranks, pipeline_chunks=1).time
        assert t == pytest.approx(fit.time(nbytes), rel=1e-9)


def test_ring_table_factors_match_the_closed_form():
    for n in (2, 3, 5):
        steps, c = links.table_factors("ring", n)
        assert steps == 2 * (n - 1)
        assert c == pytest.approx(2 * (n - 1) / n)


def test_toml_writer_round_trip():
    data = {"name": "a \"quoted\" name", "n": np.int64(3), "x": np.float64(0.25),
            "flag": True, "grid": [[1, 2, 3], [4, 5, 6]], "ys": [1.5, 2.5],
            "t": {"a": 1, "inner": {"b": "c"}},
            "rows": [{"k": 1, "v": [0.5]}, {"k": 2, "v": [1.5]}]}
    back = tomllib.loads(dumps(data, "header line"))
    assert back == {**data, "n": 3, "x": 0.25}
    with pytest.raises(ValueError, match="non-finite"):
        dumps({"x": float("nan")})
    with pytest.raises(TypeError, match="cannot write"):
        dumps({"x": object()})


def test_sustained_time_is_the_median_of_three_block_means():
    """A fake clock that each call advances by its own cost: the warm-up call sizes the
    blocks (0.03 s budget / 3 blocks / 1 ms = 10 calls), and one block disturbed by a
    slow call moves its own mean, not the median."""
    now = [0.0]
    costs = iter([1e-3] + [1e-3] * 10 + [1e-3] * 9 + [0.5] + [2e-3] * 10)

    def fn():
        now[0] += next(costs)

    budget = Budget(0.03, 100)
    assert sustained_time(fn, budget, clock=lambda: now[0]) == pytest.approx(2e-3)
    with pytest.raises(StopIteration):  # exactly 1 + 3·10 calls were made
        fn()
    assert cpu_time(lambda: sum(range(10_000)), Budget(0.003, 20)) < 0.1
    with pytest.raises(ValueError, match="seconds"):
        Budget(0.0)


def test_options_are_checked():
    with pytest.raises(ValueError, match="backend"):
        CalibrateOptions(backend="gpu")
    with pytest.raises(ValueError, match="--np"):
        CalibrateOptions(nprocs=1)
    assert CalibrateOptions().ranks == 4 and CalibrateOptions(nprocs=3).ranks == 3


def test_mpi_rows_skipped_with_a_note_without_mpi4py(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mpi4py" else real(name, *a))
    doc, why = mpi_probe.measure_mpi(2, [1024], 1)
    assert doc is None and "mpi4py is not installed" in why and "skipped" in why


@pytest.fixture(scope="module")
def quick_file(tmp_path_factory):
    """One real quick calibration without MPI, written as the CLI writes it."""
    data, notes = calibrate(CalibrateOptions(quick=True, max_ranks=3))
    path = tmp_path_factory.mktemp("cal") / "local.toml"
    path.write_text(dumps(data))
    return path, data, notes


def test_quick_calibration_file_round_trips(quick_file):
    path, data, notes = quick_file
    assert any("MPI rows not measured" in n for n in notes)
    cluster, cal = load_cluster_file(path).calibrated()
    m = data["measured"]
    assert cluster.peak_flops == pytest.approx(data["peak_tflops"] * 1e12)
    assert cluster.memory_bandwidth == pytest.approx(data["memory_bandwidth_gbs"] * 1e9)
    assert cal.cores == m["cores"] and cal.call_overhead == pytest.approx(
        m["call_overhead_us"] * 1e-6)
    curve = cal.curve("float64", cluster)
    assert curve.peak_flops == pytest.approx(m["gemm"]["float64"]["peak_gflops"] * 1e9)
    assert {(r, a, n) for r, a, n in cal.allreduce} == {
        ("inproc", a, n) for a in ("ring", "tree") for n in (2, 3)}
    assert "mpi" not in cal.p2p and 0 < cal.share_inproc <= 1
    assert cal.action_overhead == pytest.approx(m["action_overhead_us"] * 1e-6)
    assert cal.action_overhead >= 0 and cal.transcendental > 0
    assert cal.fresh_memory == pytest.approx(m["fresh_memory_ns_per_byte"] * 1e-9)
    assert cal.tensor_overhead == pytest.approx(m["tensor_overhead_us"] * 1e-6)
    assert cal.copy_bandwidth == pytest.approx(m["copy_bandwidth_gbs"] * 1e9)
    assert cal.tensor_overhead >= 0 and 0.5e9 <= cal.copy_bandwidth <= 200e9
    assert "float64" in cal.gemm_tables and "float32" in cal.gemm_tables
    assert read_cluster(tomllib.loads(path.read_text())).cluster == cluster
    text = summary(data, notes)
    assert "GEMM float64" in text and "all-reduce inproc ring N=3" in text
    assert "fresh memory" in text and "bookkeeping" in text


def test_plan_reads_a_calibrated_file(quick_file, capsys):
    path, _, _ = quick_file
    code = main(["plan", "--cluster-file", str(path), "--layers", "4", "--hidden", "64",
                 "--heads", "4", "--seq", "16", "--vocab", "100", "--global-batch", "12",
                 "--headroom", "0", "--json"])
    assert code == 0
    assert "calibrated-" in capsys.readouterr().out


def test_cli_bad_arguments_exit_2(tmp_path, capsys):
    assert main(["calibrate", "--output", str(tmp_path / "x.json"), "--quick"]) == 2
    assert "must be a .toml" in capsys.readouterr().err
    assert main(["calibrate", "--output", str(tmp_path / "no" / "x.toml")]) == 2
    assert main(["calibrate", "--output", str(tmp_path / "x.toml"), "--np", "1"]) == 2
    err = capsys.readouterr().err
    assert "--np must be >= 2" in err and "Traceback" not in err


def test_plain_cluster_file_is_refused_for_prediction(tmp_path):
    path = tmp_path / "plain.toml"
    path.write_text(dumps({"gpus_per_node": 2, "peak_tflops": 1.0, "memory_gib": 1.0,
                           "memory_bandwidth_gbs": 10.0,
                           "intra_node": {"bandwidth_gbs": 1.0, "latency_us": 1.0},
                           "inter_node": {"bandwidth_gbs": 1.0, "latency_us": 1.0}}))
    with pytest.raises(ValueError, match=r"no \[measured\] table"):
        load_cluster_file(path).calibrated()
    with pytest.raises(ValueError, match="cannot read"):
        load_cluster_file(tmp_path / "missing.toml").calibrated()


def test_link_of_a_step_is_positive():
    assert isinstance(links.step_link(links.AlphaBeta(0.0, 0.0), "ring", 2), Link)


def test_malformed_measured_table_names_the_key(tmp_path):
    from ringpipe.cost.clusterfile.measured import calibration_from_dict

    base = {"cores": 2}
    path = tmp_path / "base.toml"
    path.write_text(dumps({"gpus_per_node": 2, "peak_tflops": 1.0, "memory_gib": 1.0,
                           "memory_bandwidth_gbs": 10.0,
                           "intra_node": {"bandwidth_gbs": 1.0, "latency_us": 1.0},
                           "inter_node": {"bandwidth_gbs": 1.0, "latency_us": 1.0},
                           "measured": base}))
    cluster, cal = load_cluster_file(path).calibrated()
    assert cal.cores == 2 and cal.p2p_link("mpi", cluster) == cluster.intra
    with pytest.raises(ValueError, match="missing measured.gemm.float64.peak_gflops"):
        calibration_from_dict({**base, "gemm": {"float64": {"m0": 1.0}}}, cluster)
    with pytest.raises(TypeError, match=r"measured.p2p.mpi.latency_us must be a number"):
        calibration_from_dict({**base, "p2p": {"mpi": {"bandwidth_gbs": 1.0,
                                                       "latency_us": "x"}}}, cluster)
    with pytest.raises(ValueError, match=r"measured.allreduce\[0\].ranks must be >= 2"):
        calibration_from_dict({**base, "allreduce": [{"runtime": "mpi", "algorithm": "ring",
                                                      "ranks": 1}]}, cluster)
    with pytest.raises(TypeError, match="measured.cores must be an int"):
        calibration_from_dict({"cores": "2"}, cluster)
    with pytest.raises(ValueError, match="cpu_share.inproc"):
        calibration_from_dict({**base, "cpu_share": {"inproc": 1.5}}, cluster)


@pytest.mark.mpi
def test_mpi_rows_measured_with_np(tmp_path):
    if mpi_probe.mpi_unavailable() is not None:
        pytest.skip(mpi_probe.mpi_unavailable())
    doc, why = mpi_probe.measure_mpi(2, [1024, 1 << 16], 2)
    assert why is None and doc["ranks"] == 2 and 0 < doc["cpu_share"] <= 1
    assert len(doc["p2p"]) == 2 and all(t > 0 for _, t in doc["p2p"])
    assert {(r["algorithm"], r["ranks"]) for r in doc["allreduce"]} == {("ring", 2),
                                                                       ("tree", 2)}
    step = doc["plan_step"]
    assert step["pp"] == 2 and step["microbatches"] == 2 and 0 < step["seconds"] < 10


def test_fresh_memory_cost_is_a_finite_non_negative_rate():
    rate = compute.measure_fresh_memory(1 << 20, 3)
    assert 0.0 <= rate < 1e-6  # seconds per byte: a 4 KiB page in well under 4 ms


def test_calibrate_output_is_checked_before_measuring(tmp_path):
    import os

    from ringpipe.cli.calibrate.command import check_output, write_output

    (tmp_path / "dir.toml").mkdir()
    os.mkfifo(tmp_path / "fifo.toml")
    for path, fragment in ((tmp_path / "dir.toml", "not a regular file"),
                           (tmp_path / "fifo.toml", "not a regular file"),
                           (tmp_path / "missing" / "x.toml", "does not exist"),
                           (tmp_path / "x.json", "must be a .toml file")):
        with pytest.raises(ValueError, match=fragment):
            check_output(path)
    good = tmp_path / "ok.toml"
    check_output(good)
    assert list(tmp_path.iterdir()) and not good.exists()  # the probe file is gone
    write_output(good, "a = 1\n")
    assert good.read_text() == "a = 1\n"
    umask = os.umask(0)
    os.umask(umask)
    assert good.stat().st_mode & 0o777 == 0o666 & ~umask  # as a plain write, not 0600
    good.chmod(0o640)
    write_output(good, "a = 2\n")  # overwriting keeps the file's mode
    assert good.read_text() == "a = 2\n" and good.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.toml", "fifo.toml", "ok.toml"]


def test_verify_warns_once_when_threads_differ_from_the_file(quick_file, tmp_path, capsys):
    from ringpipe.kernels.threads import ThreadPolicy

    path, data, _ = quick_file
    assert data["measured"]["blas_threads"] == ThreadPolicy.fair_share(3).blas
    doc = tomllib.loads(path.read_text())
    args = ["verify", "--pp", "2", "--microbatches", "2", "--hidden", "8", "--heads", "2",
            "--block", "mlp", "--json", "--cluster-file"]
    run_threads = ThreadPolicy.fair_share(2).blas
    for threads, warned in ((run_threads, False), (run_threads + 5, True)):
        doc["measured"]["blas_threads"] = threads
        other = tmp_path / f"t{threads}.toml"
        other.write_text(dumps(doc))
        assert main([*args, str(other)]) == 0
        captured = capsys.readouterr()
        lines = [ln for ln in captured.err.splitlines() if ln.startswith("warning:")]
        assert len(lines) == int(warned)
        if warned:
            assert f"{run_threads} BLAS thread(s) per rank" in lines[0]
            assert f"calibrated with {threads}" in lines[0] and str(other) in lines[0]
        report = __import__("json").loads(captured.out)
        assert report["blas_threads"] == run_threads
