"""``ringpipe verify --inference --requests N``: continuous batching checked request by
request, in-process and on MPI ranks (bitwise the in-process run)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ringpipe.cli import main

SERVE = ["verify", "--inference", "--requests", "12", "--hidden", "16", "--prompt-len", "6",
         "--new-tokens", "4", "--kv-heads", "2"]


def test_in_process_serves_every_request_like_its_reference(capsys):
    assert main([*SERVE, "--tp", "2", "--pp", "2", "--backend", "numpy", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and doc["tokens_equal"] and doc["mismatched_requests"] == []
    assert len(doc["tokens"]) == 12 and doc["max_rel_error"] < 1e-10
    assert 1 <= min(len(t) for t in doc["tokens"]) and max(len(t) for t in doc["tokens"]) <= 4
    assert doc["mixed_iterations"] > 0 and doc["peak_batch"] > 1


def test_text_report_says_how_the_batches_mixed(capsys):
    assert main([*SERVE, "--dp", "2", "--backend", "numpy", "--kv-blocks", "3"]) == 0
    out = capsys.readouterr().out
    assert "tokens_equal: True" in out and "with a prompt chunk beside decodes" in out
    assert "num_blocks=3" in out and "requests that waited for KV blocks" in out


@pytest.mark.parametrize("extra,message", [
    (["--batch", "4"], "--batch does not apply to --requests"),
    (["--rate", "0"], "--rate must be > 0"),
    (["--requests", "0"], "--requests must be >= 1"),
    (["--kv-blocks", "1"], "the pool has 1"),
    (["--max-num-batched-tokens", "2"], "token_budget must be >= 8"),
    (["--backend", "cupy"], "--backend cupy does not apply to --requests"),
])
def test_bad_serving_flags_exit_2_naming_them(capsys, extra, message):
    assert main([*SERVE, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.slow
def test_mpi_ranks_serve_bitwise_like_the_in_process_run():
    done = subprocess.run([sys.executable, "-m", "ringpipe", *SERVE, "--tp", "2", "--pp", "2",
                           "--backend", "mpi", "--json", "--timeout", "240"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["tokens_equal"] and doc["bitwise_inproc"] and doc["counters_equal_inproc"]
    assert doc["processes"] == 4 and doc["backend"] == "mpi"


def test_absurd_request_counts_are_refused_before_anything_runs(capsys):
    assert main(["verify", "--inference", "--requests", "10000000", "--new-tokens", "8"]) == 2
    err = capsys.readouterr().err
    assert "continuous-batching schedule size" in err and "max_schedule_cells" in err
