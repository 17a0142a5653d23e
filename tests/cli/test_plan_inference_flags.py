"""``ringpipe plan --inference`` refuses the training-only flags it used to ignore, zero
model sizes and an empty --plot, and --json honours --top."""

import json

import pytest

from ringpipe.cli import main

BASE = ["plan", "--inference", "--model", "llama3-70b", "--cluster", "dgx-h100",
        "--prompt-len", "2048", "--output-len", "128"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, words", [
    (["--headroom", "8"], "--headroom does not apply to --inference: a serving layout fits "
                          "within 90% of GPU memory"),
    (["--headroom", "4"], "--headroom does not apply to --inference"),  # even the default
    (["--no-sp"], "--no-sp does not apply to --inference: sequence parallelism"),
    (["--seq", "4096"], "--seq does not apply to --inference: a served sequence is "
                        "--prompt-len"),
    (["--no-flash-attention"], "--no-flash-attention does not apply to --inference"),
    (["--no-distributed-optimizer"], "--no-distributed-optimizer does not apply"),
    (["--allow-uneven"], "--allow-uneven does not apply to --inference"),
    (["--kv-heads", "0"], "--kv-heads must be >= 1, got 0"),
    (["--ffn", "0"], "--ffn must be >= 1, got 0"),
    (["--plot", ""], "--plot needs a file name, got ''"),
])
def test_refused_with_exit_2_and_one_line(capsys, argv, words):
    code, out, err = run(capsys, *BASE, *argv)
    assert code == 2 and not out
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_zero_sizes_refused_for_training_too(capsys):
    code, _, err = run(capsys, "plan", "--model", "gpt3-175b", "--cluster", "dgx-a100",
                       "--global-batch", "64", "--kv-heads", "0")
    assert code == 2 and "--kv-heads must be >= 1, got 0" in err


def test_json_honours_top(capsys):
    code, out, _ = run(capsys, *BASE, "--json", "--top", "2")
    doc = json.loads(out)
    assert code == 0 and len(doc["candidates"]) == 2
    assert doc["candidates"][0]["tp"] == doc["best"]["tp"]
    code, out, _ = run(capsys, *BASE, "--json", "--top", "100")
    assert len(json.loads(out)["candidates"]) > 2  # every layout of 8 GPUs, not 100


def test_explicit_sizes_need_no_seq(capsys):
    code, out, err = run(capsys, "plan", "--inference", "--cluster", "dgx-h100",
                         "--layers", "32", "--hidden", "4096", "--heads", "32",
                         "--vocab", "32000", "--prompt-len", "512", "--output-len", "64",
                         "--top", "3")
    assert code == 0 and not err and "custom-l32-h4096" in out
    code, _, err = run(capsys, "plan", "--inference", "--cluster", "dgx-h100",
                       "--layers", "32", "--hidden", "4096")
    assert code == 2 and "missing --heads --vocab" in err and "--seq" not in err


def test_training_plan_keeps_the_default_headroom(capsys):
    argv = ["plan", "--model", "llama2-7b", "--cluster", "dgx-a100", "--nodes", "1",
            "--global-batch", "64", "--json", "--top", "1"]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and json.loads(out)["training"]["headroom_gib"] == 4
    code, out, _ = run(capsys, *argv, "--headroom", "6")
    assert code == 0 and json.loads(out)["training"]["headroom_gib"] == 6
    code, _, err = run(capsys, *argv, "--plot", "")
    assert code == 2 and "--plot needs a file name" in err
