"""Ranks started by a plain ``mpiexec`` compute with their node's fair share of the cores.

The launcher (:mod:`ringpipe.mpi.launch`) sets ``OPENBLAS_NUM_THREADS`` for the ranks it
starts; a user's own ``mpiexec python train.py`` does not, and every rank's BLAS then
keeps one thread per core. ``run_plan_mpi`` applies
:meth:`~ringpipe.kernels.threads.ThreadPolicy.node_share` for the step and restores the
pools after it. The script below gives each rank's BLAS pool one thread per core first
(what a plain ``mpiexec`` leaves), records the pools' sizes inside the step, and checks
that they are restored.

Run as a script under mpiexec by the test below; rank 0 prints one JSON line.
"""

from __future__ import annotations

import json
import sys

import pytest

from ringpipe.mpi.launch import launch

pytestmark = pytest.mark.mpi

TIMEOUT = 90


def worker() -> dict:
    import numba
    from mpi4py import MPI

    import ringpipe.runtime.mpi as runtime_mpi
    from ringpipe import Mesh, ModelConfig, Plan
    from ringpipe.kernels.threads import ThreadPolicy, available_cores, blas_libraries
    from ringpipe.model.params import init_params
    from ringpipe.verify.training import random_batch

    world = MPI.COMM_WORLD
    libs = blas_libraries()
    cores = available_cores()
    for lib in libs:  # what a plain mpiexec leaves: one thread per core
        lib.set_threads(cores)
    seen: list[tuple[int | None, int]] = []
    original = runtime_mpi.PipelineInterpreter.run

    def run(self: object) -> None:
        seen.append((libs[0].threads() if libs else None, numba.get_num_threads()))
        original(self)

    runtime_mpi.PipelineInterpreter.run = run  # type: ignore[method-assign]
    cfg = ModelConfig(layers=2, hidden=16, heads=2, seq=4, ffn=32)
    plan = Plan(cfg, Mesh(pp=2), schedule="1f1b", microbatches=2)
    params, batch = init_params(cfg, 0), random_batch(cfg, 4, 1)
    runtime_mpi.run_plan_mpi(plan, params, batch)
    given = ThreadPolicy(1, 1, "given")
    runtime_mpi.run_plan_mpi(plan, params, batch, threads=given)
    after = libs[0].threads() if libs else None
    try:
        runtime_mpi.run_plan_mpi(plan, params, batch, threads=2)  # type: ignore[arg-type]
        refused = ""
    except TypeError as exc:
        refused = str(exc)
    return {"seen": seen, "after": after, "cores": cores, "blas_found": bool(libs),
            "ranks": world.Get_size(), "refused": refused}


def test_a_plain_mpiexec_rank_computes_with_its_fair_share():
    job = launch(2, [__file__], timeout=TIMEOUT, capture=True)
    assert job.returncode == 0, job.stdout + job.stderr
    doc = json.loads(job.stdout)
    share = max(1, doc["cores"] // doc["ranks"])
    (blas, numba_threads), (blas_given, numba_given) = doc["seen"]
    if doc["blas_found"]:
        assert blas == min(share, doc["cores"]) and blas_given == 1
        assert doc["after"] == doc["cores"]  # the pool is the caller's again
    assert numba_threads <= share and numba_given == 1
    assert "threads must be a ThreadPolicy" in doc["refused"]


if __name__ == "__main__":
    result = worker()
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_rank() == 0:
        print(json.dumps(result))
    sys.exit(0)
