"""Plans on MPI processes: verified against the reference and, bitwise, the in-process run.

Each test starts one job (mpiexec in a subprocess, its own process group, killed on
timeout). ``python -m ringpipe.mpi verify --json`` prints rank 0's report: ``ok`` needs
the reference within 1e-10 (float64) and the in-process run within 1e-12;
``bitwise_inproc`` says whether every byte matched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from ringpipe.mpi.launch import launch

pytestmark = pytest.mark.mpi

TIMEOUT = 90
SMALL = ["--layers", "2", "--hidden", "16", "--heads", "4", "--seq", "4", "--json"]


def _verify(nprocs: int, *args: str) -> dict:
    job = launch(nprocs, ["-m", "ringpipe.mpi", "verify", *SMALL, *args], timeout=TIMEOUT,
                 capture=True)
    assert job.returncode == 0, job.stdout + job.stderr
    return json.loads(job.stdout)


def test_tp2_pp2_through_the_cli():
    """``ringpipe verify --backend mpi --np 4`` starts mpiexec itself."""
    cmd = [sys.executable, "-m", "ringpipe", "verify", "--backend", "mpi", "--np", "4",
           "--tp", "2", "--pp", "2", "--microbatches", "2", *SMALL]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out + err
    doc = json.loads(out)
    assert doc["ok"] is True and doc["backend"] == "mpi" and doc["processes"] == 4
    assert doc["bitwise_inproc"] is True and doc["inproc_max_abs_diff"] == 0.0
    assert doc["counters_equal_inproc"] is True
    assert doc["max_rel_error"] < 1e-10
    assert doc["peak_activations"] == [2, 1]
    assert doc["allreduce_calls"] == 4 * 2 * 2  # 4 per block and micro-batch, 2 blocks, 2 mbs


def test_dp2_pp2_zero_bubble_tree():
    doc = _verify(4, "--dp", "2", "--pp", "2", "--schedule", "zb-h1", "--microbatches", "2",
                  "--allreduce", "tree", "--vocab", "11")
    assert doc["ok"] is True and doc["bitwise_inproc"] is True
    assert doc["max_rel_error"] < 1e-10
    assert doc["allreduce_calls"] == 2  # one DP bucket per (pp, tp) position


def test_v_shape_hands_over_locally_float32():
    """ZB-V puts stages p-1 and p on one rank: a local hand-over, no message."""
    doc = _verify(2, "--pp", "2", "--schedule", "zb-v", "--microbatches", "2", "--dtype",
                  "float32", "--layers", "4", "--block", "mlp")
    assert doc["ok"] is True and doc["bitwise_inproc"] is True
    assert doc["max_rel_error"] < 1e-4


def test_allreduce_perf_tool_reports_no_wrong_results():
    job = launch(2, ["-m", "ringpipe.mpi", "allreduce", "--min-bytes", "4096", "--max-bytes",
                     "65536", "--iters", "2", "--reps", "1", "--segment-bytes", "8192",
                     "--json"], timeout=TIMEOUT, capture=True)
    assert job.returncode == 0, job.stderr
    doc = json.loads(job.stdout)
    rows = doc["rows"]
    assert doc["nranks"] == 2
    assert [(r["size_bytes"], r["algorithm"]) for r in rows] == [
        (s, a) for s in (4096, 16384, 65536) for a in ("ring", "tree", "mpi")]
    assert all(r["wrong"] == 0 and r["time_us"] > 0 for r in rows)
    assert all(r["busbw_gbps"] == pytest.approx(r["algbw_gbps"]) for r in rows)  # N = 2


def test_allreduce_perf_tool_times_floors_and_paired_samples():
    job = launch(2, ["-m", "ringpipe.mpi", "allreduce", "--min-bytes", "4096", "--max-bytes",
                     "4096", "--iters", "2", "--reps", "3", "--floor", "--algorithms",
                     "ring,mpi,tree+persistent", "--json"], timeout=TIMEOUT, capture=True)
    assert job.returncode == 0, job.stderr
    doc = json.loads(job.stdout)
    floors = {f["algorithm"]: f for f in doc["floors"]}
    assert set(floors) == {"ring", "tree"}  # one per step-table algorithm, not "mpi"
    # 2 ranks: the ring and the tree both take 2 dependent rounds of a 2 KiB half
    assert all(f["rounds"] == 2 and f["message_bytes"] == 2048 for f in floors.values())
    assert all(f["floor_us"] == pytest.approx(2 * f["exchange_us"]) for f in floors.values())
    samples = {s["algorithm"]: s["times_us"] for s in doc["samples"]}
    assert set(samples) == {"ring", "mpi", "tree+persistent", "ring floor", "tree floor"}
    assert all(len(t) == 3 and min(t) > 0 for t in samples.values())
    best = {r["algorithm"]: r["time_us"] for r in doc["rows"]}
    assert best["ring"] == pytest.approx(min(samples["ring"]))


@pytest.mark.parametrize("args,message", [
    (["--min-bytes", "1", "--max-bytes", "8"], "--min-bytes (at least one float32 element)"),
    (["--algorithms", ","], "--algorithms: give at least one"),
    (["--algorithms", "ring,ring"], "--algorithms: 'ring' is listed twice"),
])
def test_allreduce_perf_tool_refuses_empty_work_in_one_line(args, message):
    job = launch(2, ["-m", "ringpipe.mpi", "allreduce", *args], timeout=TIMEOUT, capture=True)
    assert job.returncode == 2 and message in job.stderr
    assert "Traceback" not in job.stderr and job.stdout == ""
