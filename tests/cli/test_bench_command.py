"""``ringpipe bench`` and :mod:`ringpipe.measure.bench`: the rows, their targets, the exit
status and the bound's arithmetic. Nothing here asserts on a timing."""

import json

import numpy as np
import pytest

from ringpipe.cli import bench, main
from ringpipe.measure import bench as perf_probe
from ringpipe.measure import bench_mpi as perf_mpi
from ringpipe.measure.bench import MIB, BoundRatio, Row, at_least, at_most
from ringpipe.measure.timer import best_of_each

TINY = bench.BenchSettings(1, (1 * MIB,), (4, 32, 8, 4, 4), 1, 1, 1)


def test_targets_are_met_or_not_by_the_value():
    assert at_most("x", 1.1, 1.2).met and not at_most("x", 1.3, 1.2).met
    assert at_least("x", 12, 10).met and not at_least("x", 9, 10).met
    assert at_most("t", 0.2, 0.3, " s").target == "<= 0.3 s"


def test_bound_ratio_is_the_issues_definition():
    # 8 ranks x 1 MiB: 16 MiB must move; at 16 GB/s all-core that takes 1.048576 ms.
    r = BoundRatio("ring", 8, MIB, seconds=2 * 8 * MIB / 16e9 * 1.25, allcore_gbps=16.0,
                   np_add_gbps=8.0)
    assert r.allcore_bound_s == pytest.approx(2 * 8 * MIB / 16e9)
    assert r.ratio_allcore == pytest.approx(1.25)
    assert r.ratio_np_add == pytest.approx(0.625)


def test_timing_buffers_stay_exact_under_repeated_sums():
    bufs = perf_probe.timing_buffers(4, 4096)
    assert len(bufs) == 4 and all(b.size == 1024 and not b.any() for b in bufs)
    a, b = perf_probe.add_arrays(1 << 16)
    assert a.nbytes + b.nbytes == 1 << 16 and a is not b


def test_best_of_each_alternates_and_keeps_the_minimum():
    calls = []
    best = best_of_each([lambda: calls.append("a"), lambda: calls.append("b")], 3, 2)
    assert calls == ["a", "a", "b", "b"] * 3
    assert len(best) == 2 and all(t >= 0 for t in best)


def test_quick_json_has_every_row_with_a_target(monkeypatch, capsys):
    monkeypatch.setattr(bench, "QUICK", TINY)
    monkeypatch.setattr(bench, "between", lambda a, b, cores: None)  # load unknown: all rows
    status = main(["bench", "--quick", "--json", "--skip-mpi"])
    doc = json.loads(capsys.readouterr().out)
    measures = [r["measure"] for r in doc["rows"]]
    for alg in ("ring", "tree"):
        assert f"{alg} all-reduce 8 x 1 MiB f32 / all-core bound" in measures
        assert f"{alg} all-reduce 8 x 1 MiB f32 / 1-thread np.add" in measures
        assert f"{alg} one-shot all_reduce 8 x 4 KiB, numba vs numpy" in measures
        assert f"{alg} persistent all_reduce 8 x 4 KiB, numba vs numpy" in measures
    assert any(m.startswith("1F1B p=64 m=1024") for m in measures)
    assert any(m.startswith("TP2 x PP4 1F1B plan / reference") for m in measures)
    assert doc["notes"] == ["MPI rows skipped (--skip-mpi)"] and doc["busy"] == {}
    for row in doc["rows"]:
        assert row["target"] and np.isfinite(row["value"]) and row["value"] > 0
        assert row["met"] in (True, False, None)
    assert doc["ok"] == all(r["met"] is not False for r in doc["rows"])
    assert status == (0 if doc["ok"] else 1)


def test_table_names_each_target_and_verdict():
    rows = [at_most("ring / bound", 1.1, 1.2), Row("ring / np.add", 0.7, "x", "report only",
                                                   None), at_least("speed-up", 4, 10)]
    text = bench._format(rows)
    assert "<= 1.2x" in text and "report only" in text and ">= 10x" in text
    assert [line.split()[-1] for line in text.splitlines()[1:]] == ["yes", "-", "NO"]


def test_bad_arguments_exit_2(capsys):
    assert main(["bench", "--fast"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unrecognized arguments: --fast" in err


def test_mpi_rows_targets_follow_size_algorithm_and_oversubscription(monkeypatch):
    ratios = {}
    for size in (4096, 16 * MIB):
        for alg in ("ring", "tree", "ring+persistent", "tree+persistent", "ring floor"):
            ratios[size, alg] = 1.1
    monkeypatch.setattr(perf_mpi, "mpi_ratios", lambda n, *a, **k: dict(ratios))
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 2)
    rows = {r.measure: r for r in bench.mpi_rows(TINY)}
    two = {m: r for m, r in rows.items() if m.endswith("2 ranks")}
    four = {m: r for m, r in rows.items() if m.endswith("4 ranks")}
    assert all(r.met is None and "4 ranks > 2 cores" in r.target for r in four.values())
    assert two["MPI ring / MPI_Allreduce, 16 MiB, 2 ranks"].met is False  # <= 0.9
    assert two["MPI tree / MPI_Allreduce, 16 MiB, 2 ranks"].met is True  # <= 1.2
    assert two["MPI ring+persistent / MPI_Allreduce, 4 KiB, 2 ranks"].met is True
    assert "agreement" in two["MPI ring / MPI_Allreduce, 4 KiB, 2 ranks"].target
    assert two["MPI ring floor / MPI_Allreduce, 4 KiB, 2 ranks"].met is None
    assert not any("floor" in m and "16 MiB" in m for m in rows)  # latency floor only


def test_last_level_cache_is_a_positive_size_or_unknown():
    size = perf_probe.last_level_cache_bytes()
    assert size is None or (isinstance(size, int) and size >= 64 << 10)


def test_bound_target_applies_only_beyond_the_cache(monkeypatch):
    monkeypatch.setattr(perf_probe, "last_level_cache_bytes", lambda: 32 * MIB)
    fake = BoundRatio("ring", 8, MIB, seconds=1.0, allcore_gbps=1.0, np_add_gbps=1.0)
    monkeypatch.setattr(perf_probe, "all_reduce_vs_bound", lambda *a, **k: fake)
    monkeypatch.setattr(perf_probe, "small_message_speedups", lambda *a, **k: (1.0, 20, 60))
    settings = bench.BenchSettings(1, (1 * MIB, 16 * MIB), (4, 32, 8, 4, 4), 1, 1, 1)
    rows = {r.measure: r for r in bench.collective_rows(settings)}
    assert rows["ring all-reduce 8 x 1 MiB f32 / all-core bound"].met is None  # 8 MiB fits
    assert rows["ring all-reduce 8 x 16 MiB f32 / all-core bound"].met is not None


def test_paired_ratios_are_medians_of_same_repetition_ratios():
    samples = {(4096, "mpi"): [10.0, 20.0, 10.0], (4096, "ring"): [12.0, 22.0, 30.0],
               (4096, "ring floor"): [5.0, 10.0, 5.0]}
    ratios = perf_mpi.paired_ratios(samples)
    # per repetition 1.2, 1.1, 3.0: the disturbed third one does not move the median
    assert ratios[4096, "ring"] == pytest.approx(1.2)
    assert ratios[4096, "ring floor"] == pytest.approx(0.5)
    assert (4096, "mpi") not in ratios


def _fake_proc(tmp_path, total_busy, idle, steal, load):
    proc = tmp_path / f"proc{total_busy}"
    proc.mkdir()
    (proc / "stat").write_text(f"cpu  {total_busy} 0 0 {idle} 0 0 0 {steal} 0 0\ncpu0 1 2 3\n")
    (proc / "loadavg").write_text(f"{load} 1.0 1.0 2/300 1234\n")
    return proc


def test_machine_load_counts_other_processes_and_steal(tmp_path):
    from ringpipe.measure.machine_load import MachineLoad, between, sample

    a = sample(_fake_proc(tmp_path, 1000, 1000, 0, 0.5))
    b = sample(_fake_proc(tmp_path, 1800, 1100, 100, 6.0))
    load = between(a, b, 2)  # 1000 jiffies passed: 800 busy, 100 idle, 100 steal
    assert load.steal == pytest.approx(0.1) and load.load1 == 6.0 and load.busy
    assert 0.7 < load.others <= 0.8  # 800 busy jiffies, minus this test's own CPU time
    assert "load average 6.0 on 2 cores" in load.describe() and "steal 10%" in load.describe()
    assert not MachineLoad(0.05, 0.0, 0.3, 2).busy
    assert sample(tmp_path / "no-proc") is None and between(None, b, 2) is None


def test_a_miss_on_a_busy_machine_is_not_a_failure(monkeypatch, capsys):
    from ringpipe.measure.machine_load import MachineLoad

    monkeypatch.setattr(bench, "PHASES", (("fake", "a figure", lambda s: [
        at_most("slow figure", 2.0, 1.2), at_most("fast figure", 1.0, 1.2)]),))
    monkeypatch.setattr(bench, "between", lambda a, b, cores: MachineLoad(0.8, 0.02, 11.0, 2))
    status = main(["bench", "--quick", "--skip-mpi"])
    out, err = capsys.readouterr()
    assert status == 0
    assert out.splitlines()[1].split()[-1] == "busy" and out.splitlines()[2].split()[-1] == "yes"
    assert "load average 11.0 on 2 cores, other processes used 80% of the CPU" in out
    assert "bench [1/1] fake: a figure ..." in err and "machine busy" in err  # progress
    monkeypatch.setattr(bench, "between", lambda a, b, cores: MachineLoad(0.01, 0.0, 0.2, 2))
    assert main(["bench", "--quick", "--skip-mpi"]) == 1  # quiet: the miss counts
    assert capsys.readouterr().out.splitlines()[1].split()[-1] == "NO"


def test_quick_leaves_the_plan_out_once_the_machine_is_busy(monkeypatch, capsys):
    from ringpipe.measure.machine_load import MachineLoad

    ran = []
    monkeypatch.setattr(bench, "PHASES", (
        ("collectives", "first", lambda s: ran.append("collectives") or [at_most("a", 1, 2)]),
        ("plan", "second", lambda s: ran.append("plan") or [at_most("b", 1, 2)])))
    monkeypatch.setattr(bench, "between", lambda a, b, cores: MachineLoad(0.5, 0.0, 4.0, 2))
    assert main(["bench", "--quick", "--skip-mpi"]) == 0
    out, err = capsys.readouterr()
    assert ran == ["collectives"] and "plan: skipped, the machine is busy" in err
    assert "plan rows skipped (--quick on a busy machine" in out
