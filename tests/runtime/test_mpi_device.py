"""One process per GPU, without a GPU: ``--device cupy`` on the emulated device.

Each MPI rank runs ``python -m ringpipe.mpi verify --device cupy`` with the emulated
CuPy of :mod:`emulated_device` and a fake NCCL (``tests/helpers/device_job.py``). The emulated
device computes with NumPy, so the host-staged step-table path must equal the
in-process NumPy run bit for bit; the NCCL path must be bootstrapped as NCCL documents
for MPI (one unique id per group, broadcast, one communicator per member).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ringpipe.mpi.launch import launch

pytestmark = pytest.mark.mpi

HERE = Path(__file__).resolve().parents[1] / "helpers"
PLAN = ["verify", "--device", "cupy", "--tp", "2", "--pp", "2", "--dp", "2",
        "--microbatches", "2", "--layers", "4", "--hidden", "16", "--heads", "4", "--seq",
        "4", "--vocab", "11", "--json"]


def _run(tmp_path, *extra):
    log = tmp_path / "device"
    env = {**os.environ, "RINGPIPE_DEVICE_LOG": str(log), "PYTHONPATH": str(HERE)}
    job = launch(8, [str(HERE / "device_job.py"), *PLAN, *extra], timeout=180, capture=True,
                 env=env)
    assert job.returncode == 0, job.stdout + job.stderr
    records = [json.loads(Path(f"{log}.{r}").read_text()) for r in range(8)]
    return json.loads(job.stdout), records


def test_host_staged_step_tables_are_bitwise_equal_to_in_process(tmp_path):
    doc, records = _run(tmp_path, "--allreduce", "tree")
    assert doc["ok"] is True and doc["device"] == "cupy"
    assert doc["bitwise_inproc"] is True and doc["counters_equal_inproc"] is True
    assert [p["gpu"] for p in doc["placement"]] == [r % 2 for r in range(8)]  # local rank
    assert all(rec["stages_on_device"] for rec in records)
    assert all(rec["communicators"] == [] and rec["allreduce"] == 0 for rec in records)
    assert [rec["devices_used"] for rec in records] == [[r % 2] for r in range(8)]


def test_nccl_is_bootstrapped_per_group_through_mpi(tmp_path):
    doc, records = _run(tmp_path, "--allreduce", "nccl")
    assert doc["ok"] is True and doc["max_rel_error"] < 1e-10
    # two groups per rank (tp, dp), each of size 2; the group's rank 0 made the id
    for world_rank, rec in enumerate(records):
        assert [c[0] for c in rec["communicators"]] == [2, 2]
        assert [c[2] for c in rec["communicators"]] == [world_rank % 2, world_rank // 4]
        assert rec["unique_ids"] == (world_rank % 2 == 0) + (world_rank // 4 == 0)
        assert rec["allreduce"] > 0 and rec["stages_on_device"]
    tp_pairs = {tuple(tuple(records[r]["communicators"][0][1]) for r in (2 * g, 2 * g + 1))
                for g in range(4)}
    assert all(a == b for a, b in tp_pairs)  # both members of a TP group share one id
