"""Every runtime runs the same program: MPI == in-process, bit for bit, for every schedule.

One ``mpiexec`` job (6 ranks, oversubscribed) runs the whole matrix through
``tests/helpers/parity_job.py``: each built-in schedule at least once with dp = 3 and at least
once with tp = 2, ring and tree, dense and token inputs. For each plan rank 0 compares
loss, outputs, every gradient and every rank's counters with ``plan.run(...,
backend="numpy")``. A single differing bit or counter fails the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ringpipe.mpi.launch import launch

pytestmark = pytest.mark.mpi

SMALL = {"hidden": 16, "heads": 4, "seq": 4}
SCHEDULES = ("gpipe", "1f1b", "interleaved-1f1b", "zb-h1", "zb-v", "dualpipev")


def _case(schedule: str, mesh: tuple[int, int, int], m: int, allreduce: str,
          **model: object) -> dict:
    chunks = 2 if schedule in ("interleaved-1f1b", "zb-v", "dualpipev") else 1
    dp, pp, tp = mesh
    layers = model.pop("layers", 2 * pp * chunks + (1 if chunks == 1 or
                                                    schedule == "interleaved-1f1b" else 0))
    return {"name": f"{schedule}-dp{dp}pp{pp}tp{tp}-{allreduce}", "schedule": schedule,
            "mesh": list(mesh), "m": m, "b": 2, "allreduce": allreduce,
            "chunks": 2 if schedule == "interleaved-1f1b" else None,
            "model": {**SMALL, "layers": layers, **model}}


CASES = [
    # every schedule with dp = 3 (uneven ring chunks over the DP bucket) ...
    *[_case(s, (3, 2, 1), 4, "ring" if i % 2 else "tree", vocab=11 if i % 2 else 0)
      for i, s in enumerate(SCHEDULES)],
    # ... and with tp = 2 (the layers' all-reduces between processes)
    *[_case(s, (1, 2, 2), 4, "tree" if i % 2 else "ring", vocab=0 if i % 2 else 13)
      for i, s in enumerate(SCHEDULES)],
    _case("zb-h1", (2, 1, 2), 2, "ring", vocab=7, layers=3),
    # stages holding only the embedding or only the head, and the balanced split
    {**_case("1f1b", (1, 4, 1), 4, "ring", vocab=9, layers=4), "layout": "E|t*2|t*2|L",
     "name": "1f1b-E-alone-L-alone-tp1"},
    {**_case("interleaved-1f1b", (1, 2, 2), 2, "tree", layers=2), "layout": "E|t|t|L",
     "chunks": None, "name": "interleaved-E-alone-L-alone-tp2"},
    {**_case("zb-h1", (3, 2, 1), 4, "ring", vocab=11, layers=5), "split": "balanced",
     "name": "zb-h1-balanced-dp3-tp1"},
    # the synthesised schedule, one and two stages per rank
    {**_case("synth", (3, 2, 1), 4, "tree", vocab=9), "name": "synth-dp3-tp1"},
    {**_case("synth", (1, 2, 2), 4, "ring", layers=4), "chunks": 2, "name": "synth-v2-tp2"},
]


@pytest.fixture(scope="module")
def parity() -> dict:
    job = Path(__file__).resolve().parents[1] / "helpers" / "parity_job.py"
    run = launch(6, [str(job), json.dumps(CASES)], timeout=240, capture=True)
    assert run.returncode == 0, run.stdout + run.stderr
    return {row["case"]: row for row in json.loads(run.stdout)}


def test_matrix_covers_every_schedule_with_dp3_and_tp2():
    for s in SCHEDULES:
        assert any(c["schedule"] == s and c["mesh"][0] == 3 for c in CASES)
        assert any(c["schedule"] == s and c["mesh"][2] == 2 for c in CASES)


@pytest.mark.parametrize("case", [c["name"] for c in CASES])
def test_mpi_equals_inprocess_bit_for_bit(parity, case):
    row = parity[case]
    assert row["bitwise"], row["describe"]
    assert row["counters_equal"], row["describe"]
    assert row["tp_ops"] > 0 or "tp1" in case


FLIP_ONE_BIT = """
import sys
import numpy as np
import ringpipe.runtime.mpi as runtime
from ringpipe.cli.ranks.main import main

real = runtime.run_plan_mpi

def one_ulp_off(*args, **kwargs):
    result = real(*args, **kwargs)
    if result is not None:
        g = result.grads["layers.1.mlp.fc2.weight"]
        g.flat[3] = np.nextafter(g.flat[3], np.inf)
    return result

runtime.run_plan_mpi = one_ulp_off
sys.exit(main(sys.argv[1:]))
"""


def test_verify_fails_on_a_single_differing_bit(tmp_path):
    """Within rounding is not enough: one ulp in one gradient makes verify exit 1 and
    name the tensor."""
    script = tmp_path / "flip.py"
    script.write_text(FLIP_ONE_BIT)
    args = ["verify", "--pp", "2", "--microbatches", "2", "--layers", "2", "--hidden", "16",
            "--heads", "4", "--seq", "4"]
    job = launch(2, [str(script), *args], timeout=120, capture=True)
    assert job.returncode == 1, job.stdout + job.stderr
    assert "layers.1.mlp.fc2.weight (max |diff|" in job.stdout and "MISMATCH" in job.stdout
    doc_job = launch(2, [str(script), *args, "--json"], timeout=120, capture=True)
    doc = json.loads(doc_job.stdout)
    assert doc_job.returncode == 1 and doc["ok"] is False and doc["bitwise_inproc"] is False
    assert doc["max_rel_error"] < 1e-10  # still within the reference tolerance
    assert doc["inproc_differing"][0][0] == "layers.1.mlp.fc2.weight"


DIFFERENT_BATCHES = """
import sys
from pathlib import Path
from mpi4py import MPI
from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig, init_params
from ringpipe.plan.training import Plan
from ringpipe.runtime.mpi import run_plan_mpi
from ringpipe.verify.training import random_batch

rank = MPI.COMM_WORLD.Get_rank()
cfg = ModelConfig(layers=2, hidden=16, heads=4, seq=4)
plan = Plan(cfg, Mesh(pp=2), microbatches=2)
try:
    run_plan_mpi(plan, init_params(cfg, 0), random_batch(cfg, 4 if rank == 0 else 8, 1))
except ValueError as exc:  # one file per rank: stdout lines of two ranks can interleave
    Path(sys.argv[1], f"rank{rank}.txt").write_text(f"rank {rank} raised: {exc}")
"""


def test_ranks_with_different_batches_all_raise_instead_of_hanging(tmp_path):
    script = tmp_path / "batches.py"
    script.write_text(DIFFERENT_BATCHES)
    job = launch(2, [str(script), str(tmp_path)], timeout=60, capture=True)
    assert job.returncode == 0, job.stderr
    for rank in (0, 1):
        text = (tmp_path / f"rank{rank}.txt").read_text()
        assert "run_plan_mpi: rank 1: its plan or batch shapes" in text
