"""``ringpipe verify`` and ``ringpipe plan`` with context and expert parallelism: the flags,
their JSON fields, their refusals (exit 2, one line), and the acceptance commands over MPI
(``--backend mpi``: bitwise equal to the in-process run)."""

import json
import os
import signal
import subprocess
import sys

import pytest

from ringpipe.cli import main

SMALL = ["--hidden", "16", "--heads", "4", "--seq", "8", "--json"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_cp_tp_pp_in_process(capsys):
    code, out, _ = run(capsys, "verify", "--cp", "2", "--tp", "2", "--pp", "2", *SMALL)
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True and doc["max_rel_error"] < 1e-10
    assert doc["mesh"]["cp"] == 2 and doc["bytes_sent"]["cp"] > 0


def test_verify_moe_with_ep_reports_the_aux_loss(capsys):
    code, out, _ = run(capsys, "verify", "--ep", "2", "--experts", "4", "--top-k", "2",
                       "--dp", "2", "--moe-ffn", "8", "--aux-loss-coeff", "0.01",
                       "--shared-experts", "1", "--gated-mlp", *SMALL)
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True
    assert doc["mesh"]["ep"] == 2 and doc["bytes_sent"]["ep"] > 0
    assert doc["aux_loss"] == pytest.approx(doc["reference_aux_loss"], rel=1e-10)
    assert "layers.0.moe.experts.gate.weight" in doc["errors"]


@pytest.mark.parametrize("argv,message", [
    (["--ep", "2", "--dp", "2"], "ep=2 needs a mixture-of-experts model"),
    (["--cp", "3"], "seq=8 is not divisible by 2 × cp = 6"),
    (["--experts", "4", "--ep", "3", "--dp", "3"], "ep=3 does not divide the 4 experts"),
    (["--cp", "2", "--block", "mlp"], "cp=2 needs attention layers"),
    (["--experts", "1"], "experts must be 0"),
    (["--inference", "--cp", "2"], "--cp does not apply to --inference"),
    (["--cp", "2", "--cluster-file", "x.toml"], "--cp is not priced there"),
])
def test_verify_refuses_what_cannot_run(capsys, argv, message):
    small = SMALL if "--inference" not in argv else SMALL[:4] + SMALL[6:]  # no --seq
    code, _, err = run(capsys, "verify", *argv, *small)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_plan_chooses_and_explains_ep_for_mixtral(capsys):
    code, out, _ = run(capsys, "plan", "--model", "mixtral-8x7b", "--cluster", "dgx-h100",
                       "--nodes", "4", "--global-batch", "256", "--json", "--top", "3")
    doc = json.loads(out)
    best = doc["candidates"][0]
    assert code == 0 and best["ep"] > 1 and "ep_comm" in best["breakdown_s"]
    assert doc["model"]["experts"] == 8 and doc["model"]["top_k"] == 2
    assert "Expert parallelism (EP=" in doc["explanation"]


def test_plan_pins_cp_and_prices_fp8(capsys):
    code, out, _ = run(capsys, "plan", "--model", "llama3-8b", "--seq", "65536", "--cluster",
                       "dgx-h100", "--nodes", "1", "--global-batch", "8", "--cp", "4",
                       "--dtype", "fp8", "--json", "--top", "2")
    doc = json.loads(out)
    best = doc["candidates"][0]
    assert code == 0 and best["cp"] == 4 and doc["training"]["dtype"] == "fp8"
    assert {"cp_comm_exposed", "fp8_weight_casts"} <= set(best["breakdown_s"])
    code, _, err = run(capsys, "plan", "--model", "llama3-8b", "--cluster", "dgx-a100",
                       "--nodes", "1", "--global-batch", "8", "--dtype", "fp8")
    assert code == 2 and "dgx-a100 has no FP8 tensor cores" in err
    code, _, err = run(capsys, "plan", "--model", "mixtral-8x7b", "--cluster", "dgx-h100",
                       "--inference", "--prompt-len", "8", "--output-len", "8",
                       "--batch", "1")
    assert code == 2 and "mixture-of-experts" in err


def _cli(*argv, timeout=300):
    cmd = [sys.executable, "-m", "ringpipe", *argv]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out + err
    return json.loads(out)


@pytest.mark.mpi
@pytest.mark.slow  # ~30 s each on 2 cores (8 processes)
@pytest.mark.parametrize("argv", [
    ["--cp", "2", "--tp", "2", "--pp", "2"],
    ["--ep", "2", "--experts", "4", "--top-k", "2", "--dp", "2", "--tp", "2", "--pp", "2",
     "--moe-ffn", "8", "--aux-loss-coeff", "0.01"],
], ids=["cp2-tp2-pp2", "ep2-dp2-tp2-pp2"])
def test_acceptance_commands_over_mpi(argv):
    doc = _cli("verify", *argv, "--backend", "mpi", "--np", "8", *SMALL)
    assert doc["ok"] is True and doc["processes"] == 8
    assert doc["bitwise_inproc"] is True and doc["counters_equal_inproc"] is True
    assert doc["max_rel_error"] < 1e-10
