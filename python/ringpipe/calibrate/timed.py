"""Measured versus predicted step time of one plan: what ``verify --cluster-file`` adds.

``step_time_s`` is the best of ``repeats`` timed steps after one warm-up step (on a
shared machine noise only adds time; the minimum is the least disturbed run).
``predicted_step_time_s`` is :func:`ringpipe.cost.executable.predict_plan` for the same
:class:`ringpipe.Plan`, batch size and runtime, with the calibrated constants of the
cluster file; ``predicted_over_measured`` is their ratio.

* In-process (:func:`timed_prediction`): one step is ``plan.run(params, batch,
  backend)``.
* MPI (:func:`timed_prediction_mpi`, called on every rank): one step is
  :func:`ringpipe.runtime.mpi.run_plan_mpi` between two barriers (the mesh
  communicators are built once, outside the timing), and its time is the slowest rank's.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ringpipe.cost.calibrated import Calibration, load_calibrated
from ringpipe.cost.cluster import Cluster
from ringpipe.cost.executable import predict_plan
from ringpipe.plan import Plan
from ringpipe.runtime.result import Batch
from ringpipe.validation import check_int

REPEATS = 3


def _report(plan: Plan, batch_size: int, cluster: Cluster, calibration: Calibration,
            runtime: str, measured: float, samples: list[float]) -> dict[str, Any]:
    pred = predict_plan(plan, batch_size, cluster, calibration, runtime)
    return {"step_time_s": measured, "step_time_samples_s": samples,
            **pred.to_dict(), "predicted_over_measured": pred.step_time / measured,
            "cluster_file_host": calibration.host}


def timed_prediction(plan: Plan, params: dict[str, np.ndarray], batch: Batch,
                     cluster: Cluster, calibration: Calibration, backend: str = "numba",
                     repeats: int = REPEATS) -> dict[str, Any]:
    """Time ``plan.run`` in-process and predict it (module docstring)."""
    check_int("repeats", repeats)
    batch_size = int(np.shape(batch[0])[0])
    plan.check_batch_size(batch_size)
    plan.run(params, batch, backend=backend)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        plan.run(params, batch, backend=backend)
        samples.append(time.perf_counter() - t0)
    return _report(plan, batch_size, cluster, calibration, "inproc", min(samples), samples)


def timed_prediction_mpi(plan: Plan, params: dict[str, np.ndarray], batch: Batch,
                         cluster: Cluster, calibration: Calibration, comm: Any,
                         repeats: int = REPEATS, **run_options: Any) -> dict[str, Any] | None:
    """Time ``run_plan_mpi`` on every rank of ``comm``; rank 0 returns the report.
    ``run_options`` go to :func:`~ringpipe.runtime.mpi.run_plan_mpi` (device, ...)."""
    from ringpipe.mpi.loader import load_mpi
    from ringpipe.mpi.mesh_comm import MeshComm
    from ringpipe.runtime.mpi import run_plan_mpi

    check_int("repeats", repeats)
    batch_size = int(np.shape(batch[0])[0])
    plan.check_batch_size(batch_size)
    mc = MeshComm(plan.mesh, comm)
    samples = []
    try:
        for i in range(repeats + 1):
            comm.Barrier()
            t0 = time.perf_counter()
            run_plan_mpi(plan, params, batch, mesh_comm=mc, **run_options)
            comm.Barrier()
            dt = comm.allreduce(time.perf_counter() - t0, op=load_mpi().MAX)
            if i:
                samples.append(dt)
    finally:
        mc.free()
    if comm.Get_rank() != 0:
        return None
    return _report(plan, batch_size, cluster, calibration, "mpi", min(samples), samples)


def load_cluster_file(path: str | None) -> tuple[Cluster, Calibration] | None:
    """The calibrated cluster of ``--cluster-file`` (None without one); ValueError
    naming the file when it cannot be used."""
    return None if path is None else load_calibrated(path)


def format_timing(doc: dict[str, Any]) -> str:
    """One line for the text report."""
    return (f"# step time: measured {doc['step_time_s'] * 1e3:.2f} ms (best of "
            f"{len(doc['step_time_samples_s'])}), predicted "
            f"{doc['predicted_step_time_s'] * 1e3:.2f} ms ({doc['runtime']}), "
            f"predicted/measured {doc['predicted_over_measured']:.2f}")
