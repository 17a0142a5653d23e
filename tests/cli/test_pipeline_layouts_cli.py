"""The command line of issue 22: ``schedule synth``/``dualpipev``, ``verify --schedule
auto``/``--schedule-csv``, ``plan --split``/``--layout``/``--schedule auto``."""

import json

import pytest

from ringpipe.cli import main

LAST_HEAVY = ["--forward", "1,1,1,1,1,1,1,2", "--backward-input", "1.2,1.2,1.2,1.2,1.2,1.2,1.2,2.4",
              "--backward-weight", "0.6,0.6,0.6,0.6,0.6,0.6,0.6,1.2"]


def test_schedule_synth_beats_every_fixed_schedule_when_the_last_stage_is_heavy(capsys):
    assert main(["schedule", "synth", "-p", "4", "-m", "8", "-v", "2", *LAST_HEAVY,
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    fixed = [t for t in doc["synthesis"]["fixed"].values() if t is not None]
    assert doc["schedule"] == "synth" and len(fixed) == 3
    assert doc["makespan"] == doc["synthesis"]["makespan"] < min(fixed)
    assert main(["schedule", "synth", "-p", "4", "-m", "8", "--memory-cap", "4"]) == 0
    out = capsys.readouterr().out
    assert "synthesised by list scheduling" in out and "zb-h1 27" in out


def test_synthesised_csv_runs_in_verify_inprocess(tmp_path, capsys):
    path = tmp_path / "synth.csv"
    assert main(["schedule", "synth", "-p", "4", "-m", "8", "-v", "2", *LAST_HEAVY,
                 "--format", "csv", "-o", str(path)]) == 0
    assert main(["verify", "--pp", "4", "--schedule-csv", str(path), "--vocab", "30",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


@pytest.mark.mpi
def test_synthesised_csv_runs_over_mpi_bitwise(tmp_path, capfd):
    path = tmp_path / "synth.csv"
    assert main(["schedule", "synth", "-p", "4", "-m", "8", "-v", "2", *LAST_HEAVY,
                 "--format", "csv", "-o", str(path)]) == 0
    capfd.readouterr()
    assert main(["verify", "--pp", "4", "--schedule-csv", str(path), "--backend", "mpi",
                 "--json"]) == 0
    doc = json.loads(capfd.readouterr().out)
    assert doc["ok"] and doc["bitwise_inproc"]


@pytest.mark.parametrize("argv", [["--schedule", "auto"], ["--schedule", "synth", "--chunks", "2"],
                                  ["--schedule", "dualpipev", "--microbatches", "4"]])
def test_verify_runs_synthesised_and_dualpipev_schedules(argv, capsys):
    assert main(["verify", "--pp", "2", "--microbatches", "4", "--hidden", "16", "--seq", "4",
                 "--json", *argv]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


@pytest.mark.parametrize("argv,message", [
    (["schedule", "1f1b", "-p", "4", "-m", "8", "--memory-cap", "4"], "only synth"),
    (["schedule", "synth", "-p", "4", "-m", "8", "--forward", "1,2"], "2 per-stage"),
    (["schedule", "synth", "-p", "4", "-m", "8", "--memory-cap", "0.5"], "needs 1 to hold"),
    (["schedule", "dualpipev", "-p", "4", "-m", "6"], "m >= 2p = 8"),
    (["verify", "--pp", "2", "--schedule-csv", "/nonexistent.csv"], "cannot read"),
    (["verify", "--pp", "2", "--schedule-csv", "x.csv", "--schedule", "gpipe"], "contradict"),
])
def test_bad_arguments_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


SMALL_PLAN = ["plan", "--layers", "6", "--hidden", "1024", "--heads", "16", "--seq", "1024",
              "--vocab", "128000", "--cluster", "dgx-a100", "--nodes", "1", "--global-batch",
              "32", "--json", "--top", "400"]


def test_plan_default_search_has_balanced_splits_and_dualpipev(capsys):
    assert main(SMALL_PLAN) == 0
    doc = json.loads(capsys.readouterr().out)
    cands = doc["candidates"]
    assert {"even", "balanced"} <= {c["split"] for c in cands}
    assert "dualpipev" in {c["schedule"] for c in cands}
    balanced = next(c for c in cands if c["split"] == "balanced")
    assert sum(balanced["layers_per_stage"]) == 6 and balanced["layout"].startswith("E")
    # a 128k vocabulary costs the last stage more than a layer: fewer layers there
    assert balanced["layers_per_stage"][-1] < max(balanced["layers_per_stage"])


def test_plan_split_layout_and_auto(capsys):
    assert main([*SMALL_PLAN, "--split", "even", "--pp", "2"]) == 0
    assert {c["split"] for c in json.loads(capsys.readouterr().out)["candidates"]} == {"even"}
    assert main([*SMALL_PLAN, "--layout", "E|t*3|t*3|L", "--pp", "4"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {c["layout"] for c in doc["candidates"]} == {"E|t*3|t*3|L"}
    assert main([*SMALL_PLAN, "--schedule", "auto", "--pp", "2", "--tp", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {c["schedule"] for c in doc["candidates"]} == {"synth"}
