"""``ringpipe verify``: exit codes, JSON layout, bad arguments."""

import json

import pytest

import ringpipe.verify.training as verify_module
from ringpipe.cli import main


def test_verify_json_layout(capsys):
    code = main(["verify", "--tp", "2", "--pp", "2", "--dp", "2", "--schedule", "1f1b",
                 "--microbatches", "2", "--allreduce", "tree", "--layers", "2", "--hidden",
                 "16", "--heads", "4", "--seq", "4", "--batch", "8", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["ok"] is True
    assert set(doc) == {"ok", "max_rel_error", "loss", "reference_loss", "aux_loss",
                        "reference_aux_loss", "errors", "mesh", "bytes_sent",
                        "peak_activations", "allreduce_calls"}
    assert doc["mesh"] == {"dp": 2, "pp": 2, "cp": 1, "tp": 2, "ep": 1, "etp": 2, "edp": 2}
    assert doc["max_rel_error"] < 1e-10
    assert doc["peak_activations"] == [2, 1]
    assert doc["allreduce_calls"] == 4 * 2 * 2 * 2 + 2 * 2  # tp ops + one dp op per (pp, tp)
    assert {"loss", "output", "layers.1.mlp.fc2.weight"} <= set(doc["errors"])


@pytest.mark.parametrize("schedule,extra", [("gpipe", []), ("zb-h1", []),
                                            ("interleaved-1f1b", ["--chunks", "2"])])
def test_verify_text_every_schedule(schedule, extra, capsys):
    code = main(["verify", "--pp", "2", "--tp", "2", "--schedule", schedule,
                 "--microbatches", "4", "--dtype", "float32", "--backend", "numpy", *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "# OK" in out


def test_verify_mismatch_exits_1(monkeypatch, capsys):
    monkeypatch.setitem(verify_module.TOLERANCES, "float32", 1e-30)
    assert main(["verify", "--tp", "2", "--dtype", "float32"]) == 1
    assert "MISMATCH" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["verify", "--tp", "3", "--heads", "4"], "not divisible by tp=3"),
    (["verify", "--pp", "4", "--layers", "2"], "more pipeline stages"),
    (["verify", "--dp", "2", "--microbatches", "2", "--batch", "6"], "not divisible by dp"),
    (["verify", "--schedule", "interleaved-1f1b", "--pp", "2", "--microbatches", "3"],
     "multiple of p"),
    (["verify", "--schedule", "nope"], "invalid choice"),
    (["verify", "--chunks", "2"], "does not take chunks"),
])
def test_verify_bad_arguments_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_verify_negative_seed_names_the_flag(capsys):
    assert main(["verify", "--seed", "-1"]) == 2
    assert "--seed" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [["--layout", "E,t|t*2|t*2|t,L"], ["--layout", "E|t*3|t*3|L"],
                                   ["--split", "balanced", "--vocab", "200"]])
def test_verify_layout_and_balanced_split(extra, capsys):
    code = main(["verify", "--pp", "4", "--microbatches", "4", "--hidden", "16", "--seq", "4",
                 "--json", *extra])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["ok"] and doc["max_rel_error"] < 1e-10


@pytest.mark.mpi
@pytest.mark.parametrize("extra", [["--layout", "E,t|t*2|t*2|t,L"],
                                   ["--layout", "E|t*3|t*3|L", "--tp", "2", "--np", "8"],
                                   ["--split", "balanced", "--vocab", "200"]])
def test_verify_layout_over_mpi_is_bitwise_inprocess(extra, capfd):
    code = main(["verify", "--pp", "4", "--microbatches", "4", "--hidden", "16", "--seq", "4",
                 "--backend", "mpi", "--json", *extra])
    doc = json.loads(capfd.readouterr().out)
    assert code == 0 and doc["ok"] and doc["bitwise_inproc"] is True


@pytest.mark.parametrize("argv,message", [
    (["verify", "--pp", "2", "--layout", "E,t||t,L"], "stage 1 of 'E,t||t,L' is empty"),
    (["verify", "--pp", "2", "--layout", "E,t|t,L", "--split", "balanced"], "contradict"),
    (["verify", "--pp", "4", "--layout", "E,t|t,L"], "has 2 stages, the schedule has 4"),
    (["verify", "--inference", "--layout", "E,t|t,L"], "--layout does not apply"),
])
def test_verify_bad_layout_exits_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
