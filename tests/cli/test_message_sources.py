"""Every refusal names where the bad value came from -- the environment variable, the
file and key, the argument -- on one line."""

from __future__ import annotations

import json

import pytest

from ringpipe.cli import main
from ringpipe.files import display
from ringpipe.limits import Limits
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.plan.training import Plan

SCHEDULE = ["schedule", "1f1b", "-p", "2", "-m", "2"]
CLUSTER = {"gpus_per_node": 8, "peak_tflops": 312, "memory_gib": 80,
           "memory_bandwidth_gbs": 2039, "intra_node": {"bandwidth_gbs": 300, "latency_us": 2},
           "inter_node": {"bandwidth_gbs": 25, "latency_us": 6}}


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "internal error" not in err
    return err


@pytest.mark.parametrize("value", ["²", "٣", "1e3", "-4", ""])
def test_a_bad_limit_names_the_variable_and_the_limit(monkeypatch, capsys, value):
    monkeypatch.setenv("RINGPIPE_LIMITS", f"max_ranks={value}")
    assert main(SCHEDULE) == 2
    err = one_line(capsys)
    assert "RINGPIPE_LIMITS max_ranks: not a size" in err and "invalid literal" not in err
    with pytest.raises(ValueError, match="RINGPIPE_LIMITS max_ranks"):
        Limits.parse(f"max_ranks={value}")


@pytest.mark.parametrize("name", ["\ud800", "two\nlines", "bell\a"])
def test_a_cluster_name_that_cannot_be_printed_names_the_file_and_key(tmp_path, capsys, name):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**CLUSTER, "name": name}))  # "\ud800" is JSON's own escape
    assert main(["plan", "--model", "gpt3-175b", "--cluster-file", str(path),
                 "--global-batch", "64"]) == 2
    err = one_line(capsys)
    assert f"{path}: name must be printable text" in err and "codec" not in err


def test_a_schedule_that_is_not_a_name_is_named_as_plans_argument():
    cfg = ModelConfig(layers=2, hidden=32, heads=4, seq=8)
    with pytest.raises(TypeError, match=r"^Plan: schedule: expected a schedule name \(str\) "
                                        r"such as '1f1b', got NoneType$"):
        Plan(cfg, Mesh(pp=1), schedule=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^Plan: schedule: unknown schedule '1fb1'"):
        Plan(cfg, Mesh(pp=1), schedule="1fb1")


def test_a_path_with_a_newline_is_named_on_one_line(tmp_path, capsys):
    path = str(tmp_path / "two\nlines.toml")
    assert display(path).count("\n") == 0 and "two\\nlines.toml" in display(path)
    assert main(["plan", "--model", "gpt3-175b", "--cluster-file", path,
                 "--global-batch", "64"]) == 2
    assert "two\\nlines.toml: cannot read the cluster file" in one_line(capsys)
    assert main(["schedule", "--from-csv", path]) == 2
    assert "--from-csv " in one_line(capsys)
