"""``ringpipe plan``: output, JSON layout, pins, exit codes, plots."""

import json

import pytest

from ringpipe.cli import main

SMALL = ["plan", "--model", "llama2-7b", "--cluster", "dgx-a100", "--nodes", "1",
         "--global-batch", "64"]
BIG = ["--layers", "80", "--hidden", "10240", "--heads", "80", "--seq", "2048",
       "--vocab", "51200"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_text_table_and_explanation(capsys):
    code, out, err = run(capsys, *SMALL, "--top", "3")
    assert code == 0 and err == ""
    assert out.startswith("Verdict: ")  # the decision first, then the table to study
    lines = out.splitlines()
    lines = lines[lines.index("") + 1:]
    assert lines[0].startswith("# llama2-7b (6.7B params) on 1 × dgx-a100 (8 GPUs)")
    assert lines[1].split() == ["model", "FLOPs", "hardware"]
    assert lines[2].split()[:4] == ["rank", "tp", "pp", "dp"]
    assert "MFU" in lines[2]
    assert [line.split()[0] for line in lines[3:6]] == ["1", "2", "3"]
    assert "It beats the best configuration with a different (tp, pp)" in lines[-1]
    assert "Memory per GPU:" in lines[-1]


def test_json_layout_includes_non_fitting_candidates(capsys):
    code, out, _ = run(capsys, "plan", *BIG, "--cluster", "dgx-a100", "--nodes", "4",
                       "--global-batch", "32", "--json")
    doc = json.loads(out)
    assert code == 0 and set(doc) == {"cluster", "model", "training", "verdict",
                                      "explanation", "candidates", "emit"}
    assert doc["emit"] is None and doc["verdict"]["summary"].startswith("Verdict: ")
    assert doc["cluster"]["name"] == "dgx-a100" and doc["cluster"]["nodes"] == 4
    assert doc["model"]["layers"] == 80 and doc["training"]["global_batch"] == 32
    assert doc["training"]["recipe"]["sequence_parallel"] is True
    assert doc["training"]["headroom_gib"] == 4
    first = doc["candidates"][0]
    assert {"tp", "pp", "dp", "schedule", "microbatch_size", "step_time_s",
            "model_tflops_per_gpu", "hardware_tflops_per_gpu", "mfu", "hfu", "memory",
            "memory_gib", "bubble_fraction", "comm_fraction", "fits"} <= set(first)
    assert first["tp"] * first["pp"] == 32 and first["fits"]
    mem = first["memory"]
    parts = ("weights_gib", "gradients_gib", "optimizer_gib", "activations_gib",
             "comm_buffers_gib", "reserved_gib")
    assert sum(mem[k] for k in parts) == pytest.approx(mem["total_gib"])
    assert "peak_pipeline_rank" in mem and doc["explanation"].startswith(
        f"tp{first['tp']} pp{first['pp']}")
    assert len(doc["candidates"]) == 10  # --top's default


def test_json_honours_top_and_pins_compare(capsys):
    code, out, _ = run(capsys, "plan", *BIG, "--cluster", "dgx-a100", "--nodes", "4",
                       "--global-batch", "32", "--json", "--top", "3", "--tp", "8",
                       "--pp", "4")
    doc = json.loads(out)
    assert code == 0 and len(doc["candidates"]) == 3
    assert doc["pinned"]["predicted_slowdown"] >= 0
    assert doc["pinned"]["best_unpinned"]["fits"]
    code, out, _ = run(capsys, "plan", *BIG, "--cluster", "dgx-a100", "--nodes", "4",
                       "--global-batch", "32", "--tp", "8", "--pp", "4")
    assert "without the pins" in out


def test_recipe_flags_reach_the_model(capsys):
    code, out, _ = run(capsys, *SMALL, "--no-sp", "--no-flash-attention",
                       "--no-distributed-optimizer", "--no-overlap-grad-reduce",
                       "--headroom", "2.5", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["training"]["headroom_gib"] == 2.5
    assert not any(doc["training"]["recipe"][k] for k in (
        "sequence_parallel", "flash_attention", "distributed_optimizer",
        "overlap_grad_reduce"))
    code, _, err = run(capsys, *SMALL, "--headroom", "-1")
    assert code == 2 and "--headroom must be >= 0" in err


def test_all_pins_print_the_single_prediction(capsys):
    code, out, _ = run(capsys, *SMALL, "--tp", "2", "--pp", "2", "--dp", "2", "--schedule",
                       "interleaved-1f1b", "--chunks", "2", "--microbatch-size", "2",
                       "--recompute", "full", "--json")
    cands = json.loads(out)["candidates"]
    assert code == 0 and len(cands) == 1
    assert {k: cands[0][k] for k in ("tp", "pp", "dp", "chunks", "microbatch_size")} == \
        {"tp": 2, "pp": 2, "dp": 2, "chunks": 2, "microbatch_size": 2}


def test_explicit_sizes_override_a_preset(capsys):
    code, out, _ = run(capsys, *SMALL, "--seq", "1024", "--json")
    assert code == 0 and json.loads(out)["model"]["seq"] == 1024
    # the modified model is labelled as such, not as the preset it started from
    assert json.loads(out)["model"]["name"] == "llama2-7b+seq=1024"
    code, out, _ = run(capsys, *SMALL, "--layers", "16")
    assert code == 0 and "\n# llama2-7b+layers=16 (" in out
    code, out, _ = run(capsys, *SMALL, "--seq", "4096", "--json")  # the preset's own value
    assert json.loads(out)["model"]["name"] == "llama2-7b"


def test_fits_nowhere_exits_1_with_the_memory_it_needs(capsys):
    code, out, err = run(capsys, "plan", "--model", "gpt3-175b", "--cluster", "dgx-a100",
                         "--nodes", "2", "--global-batch", "64")
    assert code == 1 and "closest by memory" in out
    assert err.count("\n") == 1 and "fits nowhere" in err and "GiB" in err


def test_cluster_file(tmp_path, capsys):
    path = tmp_path / "box.toml"
    path.write_text('name = "box"\ngpus_per_node = 4\npeak_tflops = 312\nmemory_gib = 80\n'
                    'memory_bandwidth_gbs = 2000\n[intra_node]\nbandwidth_gbs = 300\n'
                    'latency_us = 2\n[inter_node]\nbandwidth_gbs = 25\nlatency_us = 6\n')
    code, out, _ = run(capsys, "plan", "--model", "llama2-7b", "--cluster-file", str(path),
                       "--nodes", "2", "--global-batch", "32", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["cluster"]["name"] == "box" and doc["cluster"]["nodes"] == 2
    assert all(c["tp"] * c["pp"] * c["dp"] == 8 for c in doc["candidates"])


@pytest.mark.parametrize("argv, message", [
    (["plan", "--model", "gpt5", "--cluster", "dgx-a100", "--global-batch", "8"], "invalid choice"),
    (["plan", "--cluster", "dgx-a100", "--global-batch", "8", "--layers", "2"], "missing --hidden"),
    ([*SMALL[:3], "--global-batch", "8"], "exactly one of --cluster and --cluster-file"),
    ([*SMALL, "--nodes", "0"], "--nodes must be >= 1"),
    (["plan", "--layers", "7", "--hidden", "70", "--heads", "7", "--seq", "64", "--vocab",
      "100", "--cluster", "dgx-a100", "--nodes", "2", "--global-batch", "7"],
     "no TP×PP×DP factorisation"),
    ([*SMALL, "--layout", "E,t|t,L", "--global-batch", "8"], "no searched pp × v"),
    ([*SMALL, "--layout", "E,t||t,L", "--global-batch", "8"], "is empty"),
    ([*SMALL, "--tp", "3"], "tp=3 does not divide the cluster's 8 GPUs"),
    ([*SMALL, "--top", "0"], "--top must be >= 1"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err


def test_bad_cluster_file_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"gpus_per_node": 8, "peak_tflops": 0, "memory_gib": 80,
                                "memory_bandwidth_gbs": 1, "intra_node": {}, "inter_node": {}}))
    code, _, err = run(capsys, "plan", "--model", "llama2-7b", "--cluster-file", str(path),
                       "--global-batch", "8")
    assert code == 2 and "peak_tflops must be > 0" in err


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "plan.png"
    code, _, _ = run(capsys, *SMALL, "--plot", str(path), "--top", "4")
    assert code == 0 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("pin,message", [
    (["--tp", "16"], "tp=16 needs more GPUs than the cluster's 8"),
    (["--pp", "3"], "pp=3 does not divide the cluster's 8 GPUs"),
])
def test_a_pin_the_cluster_cannot_hold_is_named(pin, message, capsys):
    assert main(["plan", "--model", "llama2-7b", "--cluster", "dgx-a100",
                 "--global-batch", "64", *pin]) == 2
    assert message in capsys.readouterr().err
