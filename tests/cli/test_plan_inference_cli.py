"""``ringpipe plan --inference``: ranking, explanation, SLOs, exit codes, plot."""

import json

import pytest

from ringpipe.cli import main
from ringpipe.cost import cluster_preset, model_preset
from ringpipe.cost.inference.search import batch_sweep, layouts, search
from ringpipe.cost.inference.workload import Workload

BASE = ["plan", "--inference", "--model", "llama3-70b", "--cluster", "dgx-h100",
        "--prompt-len", "2048", "--output-len", "128"]


def run(capsys, *argv):
    code = main([*BASE, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_batch_1_recommends_tp_heavy(capsys):
    code, out, err = run(capsys, "--batch", "1", "--json")
    assert code == 0 and not err
    doc = json.loads(out)
    best = doc["best"]
    assert best["tp"] >= 4 and best["tp"] > best["pp"]
    assert "all-reduces" in doc["explanation"] and "PP-heavy" in doc["explanation"]
    keys = {"ttft_s", "tpot_s", "tokens_per_s_per_user", "tokens_per_s_per_gpu",
            "kv_cache_gib", "memory_gib", "max_batch", "fits"}
    assert keys <= set(best)
    tpots = [c["tpot_s"] for c in doc["candidates"] if c["fits"]]
    assert tpots == sorted(tpots)


def test_throughput_objective_explains_allreduces_and_groups(capsys):
    code, out, _ = run(capsys, "--batch", "256", "--objective", "throughput")
    assert code == 0
    sentence = out.strip().splitlines()[-1]
    assert "all-reduces" in sentence and "in flight" in sentence
    assert "tokens/s per GPU" in sentence


def test_slos_filter_and_fail(capsys):
    code, out, _ = run(capsys, "--batch", "1", "--tpot-slo-ms", "25", "--json")
    doc = json.loads(out)
    assert code == 0 and all(c["tpot_s"] <= 0.025 for c in doc["candidates"]
                             if c["meets_slo"])
    code, _, err = run(capsys, "--batch", "1", "--tpot-slo-ms", "1")
    assert code == 1 and "no layout fits and meets the SLOs" in err


@pytest.mark.parametrize("argv, message", [
    (["--global-batch", "8"], "--global-batch does not apply to --inference"),
    (["--recompute", "full"], "--recompute does not apply to --inference"),
    (["--ttft-slo-ms", "0"], "--ttft-slo-ms must be > 0"),
    (["--tp", "3"], "no layout of 8 GPUs"),
    (["--batch", "0"], "Workload.batch must be >= 1"),
])
def test_bad_arguments_exit_2(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_training_plan_still_requires_global_batch(capsys):
    code = main(["plan", "--model", "llama2-7b", "--cluster", "dgx-a100"])
    assert code == 2 and "--global-batch is required" in capsys.readouterr().err


def test_pins_and_layouts():
    m = model_preset("llama3-70b")
    found = layouts(m, 8)
    assert len(found) == 10 and all(lay.world == 8 for lay in found)
    report = search(m, cluster_preset("dgx-h100"), Workload(128, 16, 4), pins={"pp": 2})
    assert {c.prediction.layout.pp for c in report.candidates} == {2}
    assert batch_sweep(100, 2) == [2, 4, 8, 16, 32, 64, 100]


def test_plot_writes_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "front.png"
    code, _, _ = run(capsys, "--batch", "4", "--plot", str(path))
    assert code == 0 and path.read_bytes()[:4] == b"\x89PNG"
