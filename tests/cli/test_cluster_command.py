"""``ringpipe cluster show|check`` and ``plan --set``: presets as editable files, one set
of key checks for files, standard input and one-off overrides; CPU files in plain words."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import tomllib

from ringpipe.cli import main
from ringpipe.cost.clusterfile.load import read_cluster
from ringpipe.cost.clusterfile.overrides import apply_overrides, parse_override
from ringpipe.cost.hardware.cluster import CLUSTER_PRESETS

PLAN = ["plan", "--model", "llama2-7b", "--global-batch", "256", "--json", "--top", "1"]


def calibrated() -> dict:
    """A small file as ``ringpipe calibrate`` writes one on CPUs (abridged)."""
    link = {"bandwidth_gbs": 2.5, "latency_us": 3.0}
    return {"name": "lab", "device": "cpu", "nodes": 1, "gpus_per_node": 2,
            "peak_tflops": 0.05, "memory_gib": 4.0, "memory_bandwidth_gbs": 10.0,
            "achievable_fraction": 1.0, "intra_node": dict(link), "inter_node": dict(link),
            "kernels": {"sm_count": 1, "tile_m": 1, "tile_n": 1, "flash_fraction": 1.0,
                        "launch_overhead_us": 2.0, "saturation": 9.0},
            "measured": {"host": "lab", "cores": 2, "blas_threads": 1, "backend": "numba",
                         "p2p": {"inproc": dict(link)}}}


def _stdin(monkeypatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))


@pytest.mark.parametrize("preset", list(CLUSTER_PRESETS))
@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_show_then_check_round_trips_to_the_same_cluster(preset, fmt, capsys, monkeypatch):
    assert main(["cluster", "show", preset, "--format", fmt]) == 0
    shown = capsys.readouterr().out
    doc = tomllib.loads(shown) if fmt == "toml" else json.loads(shown)
    assert read_cluster(doc).cluster == CLUSTER_PRESETS[preset]
    _stdin(monkeypatch, shown)
    assert main(["cluster", "check", "-", "--format", fmt]) == 0
    checked = capsys.readouterr().out
    assert checked.splitlines()[0].startswith(f"# ok: <stdin>: {preset}:") or fmt == "json"
    again = tomllib.loads(checked) if fmt == "toml" else json.loads(checked)
    assert read_cluster(again).cluster == CLUSTER_PRESETS[preset]


def test_show_piped_into_check_as_a_user_types_it(tmp_path):
    cmd = (f"{sys.executable} -m ringpipe cluster show dgx-h100 --format toml | "
           f"{sys.executable} -m ringpipe cluster check -")
    done = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert read_cluster(tomllib.loads(done.stdout)).cluster == CLUSTER_PRESETS["dgx-h100"]


def test_check_refuses_a_bad_file_on_one_line(tmp_path, capsys, monkeypatch):
    shown = CLUSTER_PRESETS["dgx-a100"].to_dict()
    shown["intra_node"]["bandwidth_gbs"] = 0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(shown))
    assert main(["cluster", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: ringpipe cluster: {path}: intra_node.bandwidth_gbs must be > 0, "
                   "got 0"]
    _stdin(monkeypatch, "peak_tflops = 3\n")
    assert main(["cluster", "check", "-"]) == 2
    assert "<stdin>: missing gpus_per_node" in capsys.readouterr().err
    _stdin(monkeypatch, "")
    assert main(["cluster", "check", "-"]) == 2
    assert "<stdin>: the cluster file is empty" in capsys.readouterr().err


def test_check_keeps_a_measured_table(tmp_path, capsys):
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(calibrated()))
    assert main(["cluster", "check", str(path)]) == 0
    out = capsys.readouterr().out
    doc = tomllib.loads(out)
    assert doc["measured"] == calibrated()["measured"]
    assert read_cluster(doc).cluster == read_cluster(calibrated()).cluster
    assert "x 2 processes, peak 50 GFLOP/s" in out.splitlines()[0]
    del doc["device"], doc["measured"]["backend"]  # no label and no backend: a GPU file
    assert read_cluster(doc).cluster.device == "gpu"
    doc["measured"]["backend"] = "numpy"  # files from before the label: by the backend
    assert read_cluster(doc).cluster.device == "cpu"


def test_parse_override_reads_toml_values_and_bare_words():
    assert parse_override("inter_node.bandwidth_gbs=50") == (("inter_node", "bandwidth_gbs"), 50)
    assert parse_override("name = my-box") == (("name",), "my-box")
    assert parse_override('name="a b"')[1] == "a b"
    for bad in ("peak_tflops", "=3", "a..b=1", "x=nan"):
        with pytest.raises(ValueError, match="--set"):
            parse_override(bad)
    doc = apply_overrides({"a": {"b": 1}}, ["a.b=2", "c.d=3"])
    assert doc == {"a": {"b": 2}, "c": {"d": 3}}


def test_set_changes_the_plan_and_is_checked_like_a_file(capsys, tmp_path):
    def best(*extra):
        assert main([*PLAN, "--cluster", "dgx-h100", "--nodes", "2", *extra]) == 0
        doc = json.loads(capsys.readouterr().out)
        return doc["cluster"], doc["candidates"][0]

    base_cluster, base = best()
    slow_cluster, slow = best("--set", "inter_node.bandwidth_gbs=2", "--set",
                              "inter_node.latency_us=40")
    assert slow_cluster["inter_node"] == {"bandwidth_gbs": 2, "latency_us": 40}
    assert base_cluster["inter_node"]["bandwidth_gbs"] == 50
    assert slow["step_time_s"] > base["step_time_s"]
    for flag, message in (("inter_node.bandwith_gbs=5", "unknown key 'inter_node.bandwith_gbs'"),
                          ("peak_tflops=-1", "peak_tflops must be > 0, got -1"),
                          ("gpus_per_node=two", "gpus_per_node must be an int")):
        assert main([*PLAN, "--cluster", "dgx-h100", "--set", flag]) == 2
        err = capsys.readouterr().err
        assert "preset dgx-h100 with --set" in err and message in err, err
    path = tmp_path / "c.toml"
    main(["cluster", "show", "dgx-a100"])
    path.write_text(capsys.readouterr().out)
    assert main([*PLAN, "--cluster-file", str(path), "--set", "nodes=16"]) == 0
    assert json.loads(capsys.readouterr().out)["cluster"]["nodes"] == 16


def test_a_cpu_file_speaks_of_processes_and_gflops(tmp_path, capsys):
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps(calibrated()))
    args = ["plan", "--cluster-file", str(path), "--layers", "4", "--hidden", "64",
            "--heads", "4", "--seq", "16", "--vocab", "100", "--global-batch", "8",
            "--headroom", "0"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "(2 processes)" in out and "GFLOP/s" in out and "per process" in out
    assert "GPU" not in out and "TFLOP/s" not in out and "reserve" not in out
    assert main(["plan", "--cluster", "dgx-a100", "--model", "gpt3-175b", "--nodes", "8",
                 "--global-batch", "1536", "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert "(64 GPUs)" in out and "TFLOP/s per GPU" in out and "reserve 1.5" in out
