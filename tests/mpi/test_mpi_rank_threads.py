"""MPI ranks compute with their node's fair share of the cores, and ``verify`` paces an
MPI step by its least-served rank.

The launcher (:mod:`ringpipe.mpi.launch`) sets ``OPENBLAS_NUM_THREADS`` for the ranks it
starts; a user's own ``mpiexec python train.py`` does not, and every rank's BLAS then
keeps one thread per core. ``run_plan_mpi`` and ``run_inference_mpi`` apply
:meth:`~ringpipe.kernels.threads.ThreadPolicy.node_share` for the step and restore the
pools after it. The script gives each rank's BLAS pool one thread per core first (what a
plain ``mpiexec`` leaves) and records the pools' sizes inside each step.

It also gives the ranks different CPU shares (rank r's probe reports 0.9 - 0.4·r) and
checks that :func:`~ringpipe.measure.step_time.timed_prediction_mpi` records the smallest.

Run as a script under mpiexec by the tests below; rank 0 prints one JSON line.
"""

from __future__ import annotations

import json
import sys

import pytest

from ringpipe.mpi.launch import launch

pytestmark = pytest.mark.mpi

TIMEOUT = 90


def _recorder(module: object, libs: tuple, seen: list) -> None:
    import numba

    original = module.PipelineInterpreter.run  # type: ignore[attr-defined]

    def run(self: object) -> None:
        seen.append((libs[0].threads() if libs else None, numba.get_num_threads()))
        original(self)

    module.PipelineInterpreter.run = run  # type: ignore[attr-defined]


def worker() -> dict:
    import numpy as np
    from mpi4py import MPI

    import ringpipe.measure.step_time as step_time
    import ringpipe.runtime.inference_mpi as inference_mpi
    import ringpipe.runtime.mpi as runtime_mpi
    from ringpipe import Mesh, ModelConfig, Plan
    from ringpipe.cost.hardware.calibration import Calibration
    from ringpipe.cost.hardware.cluster import cluster_preset
    from ringpipe.kernels.threads import ThreadPolicy, available_cores, blas_libraries
    from ringpipe.model.params import init_params
    from ringpipe.plan.inference import InferencePlan
    from ringpipe.verify.training import random_batch

    world = MPI.COMM_WORLD
    libs = blas_libraries()
    cores = available_cores()
    for lib in libs:  # what a plain mpiexec leaves: one thread per core
        lib.set_threads(cores)
    seen: list = []
    _recorder(runtime_mpi, libs, seen)
    cfg = ModelConfig(layers=2, hidden=16, heads=2, seq=4, ffn=32)
    plan = Plan(cfg, Mesh(pp=2), schedule="1f1b", microbatches=2)
    params, batch = init_params(cfg, 0), random_batch(cfg, 4, 1)
    runtime_mpi.run_plan_mpi(plan, params, batch)
    runtime_mpi.run_plan_mpi(plan, params, batch, threads=ThreadPolicy(1, 1, "given"))
    after = libs[0].threads() if libs else None
    seen = list(seen)  # the two training steps (the timed steps below add more)
    icfg = ModelConfig(layers=2, hidden=16, heads=4, kv_heads=2, vocab=40)
    iplan, iparams = InferencePlan(icfg, Mesh(pp=2), 2, 3, 2), init_params(icfg, 1)
    prompts = np.random.default_rng(3).integers(0, icfg.vocab, (2, 3))
    refused = []
    for call in (lambda: runtime_mpi.run_plan_mpi(plan, params, batch, threads=2),
                 lambda: inference_mpi.run_inference_mpi(iplan, iparams, prompts, world, 2)):
        try:
            call()
        except TypeError as exc:
            refused.append(str(exc))
    # generation: the same policy on the decode ranks
    inference_seen: list = []
    _recorder(inference_mpi, libs, inference_seen)
    for lib in libs:
        lib.set_threads(cores)
    inference_mpi.run_inference_mpi(iplan, iparams, prompts, world)
    # the least-served rank paces the step: rank r's probe reports 0.9 - 0.4·r
    step_time.cpu_share = lambda seconds: 0.9 - 0.4 * world.Get_rank()
    cal = Calibration(cores=2, blas_threads=1, call_overhead=1e-6, memory_bandwidth=1e10)
    doc = step_time.timed_prediction_mpi(plan, params, batch, cluster_preset("dgx-a100"),
                                         cal, world, repeats=2)
    return {"seen": seen, "inference_seen": inference_seen[:1], "after": after,
            "cores": cores, "blas_found": bool(libs), "ranks": world.Get_size(),
            "refused": refused, "shares": None if doc is None else doc["cpu_share_samples"],
            "share_now": None if doc is None else doc["cpu_share_now"]}


@pytest.fixture(scope="module")
def job_doc() -> dict:
    job = launch(2, [__file__], timeout=TIMEOUT, capture=True)
    assert job.returncode == 0, job.stdout + job.stderr
    return json.loads(job.stdout)


def test_a_plain_mpiexec_rank_computes_with_its_fair_share(job_doc):
    share = max(1, job_doc["cores"] // job_doc["ranks"])
    (blas, numba_threads), (blas_given, numba_given) = job_doc["seen"]
    ((blas_decode, numba_decode),) = job_doc["inference_seen"]
    if job_doc["blas_found"]:
        assert blas == share and blas_decode == share and blas_given == 1
        assert job_doc["after"] == job_doc["cores"]  # the pool is the caller's again
    assert numba_threads <= share and numba_decode <= share and numba_given == 1


def test_a_bad_thread_policy_is_refused_by_name(job_doc):
    first, second = job_doc["refused"]
    assert first.startswith("run_plan_mpi: threads must be a ThreadPolicy")
    assert second.startswith("run_inference_mpi: threads must be a ThreadPolicy")


def test_the_least_served_rank_paces_the_step(job_doc):
    assert job_doc["shares"] == pytest.approx([0.5, 0.5])  # min(0.9, 0.5), not the mean
    assert job_doc["share_now"] == pytest.approx(0.5)


if __name__ == "__main__":
    result = worker()
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_rank() == 0:
        print(json.dumps(result))
    sys.exit(0)
