"""Measured versus predicted step time of one plan: what ``verify --cluster-file`` adds.

``step_time_s`` is the best of ``repeats`` timed steps after one warm-up step (on a
shared machine noise only adds time; the minimum is the least disturbed run).
``predicted_step_time_s`` is :meth:`ringpipe.cost.executable.predict.PlanModel.predict` for the same
:class:`ringpipe.Plan`, batch size and runtime, with the calibrated constants of the
cluster file; ``predicted_over_measured`` is their ratio.

The calibrated costs are CPU time; how much of a core a process gets depends on what
else the machine runs at that moment. So just before each timed step every process
spins for :data:`SHARE_SECONDS` (all MPI ranks at once) and the prediction uses the
best share seen (``cpu_share_now``, paired with the best step;
:func:`ringpipe.measure.timer.cpu_share`) instead of the share seen while
calibrating. It is a measurement of the machine, not of the plan.

The timed steps run inside one :func:`~ringpipe.kernels.heap.retained_heap` block, as a
training loop would hold it (each step's result is dropped inside it, so the allocator
does not hand the step's memory back between steps), and are predicted so.

Both run and predict under one thread count per rank
(:class:`~ringpipe.kernels.threads.ThreadPolicy`; by default the fair share the runtimes
give each rank); :func:`thread_warning` is the one line ``verify`` prints when it is not
the count the cluster file was calibrated with.

In-process, the report also gives the step's CPU time (``step_cpu_time_s``, the
calling thread's, best of the repetitions) next to the prediction at a full core
(``predicted_cpu_time_s``): the cost model's accuracy with the machine's load taken out.

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

from ringpipe.cost.executable.predict import PlanModel
from ringpipe.cost.hardware.calibration import Calibration
from ringpipe.cost.hardware.cluster import Cluster
from ringpipe.kernels.heap import HeapPolicy, retained_heap
from ringpipe.kernels.threads import ThreadPolicy
from ringpipe.measure.timer import cpu_share, per_call, wall_and_cpu
from ringpipe.plan.training import Plan
from ringpipe.runtime.result import Batch
from ringpipe.validation import check_int

REPEATS = 5
#: Seconds of the spin loop that measures the CPU share before the timed steps.
SHARE_SECONDS = 0.3


def thread_warning(threads: int, calibration: Calibration, source: str) -> str | None:
    """One line when a run computes with ``threads`` BLAS threads per rank but the
    cluster file ``source`` was calibrated with another count (None when they agree):
    the GEMM curve then describes another machine state."""
    if threads == calibration.blas_threads:
        return None
    return (f"warning: this run computes with {threads} BLAS thread(s) per rank but "
            f"{source} was calibrated with {calibration.blas_threads}, so its GEMM rates "
            f"may not hold; calibrate under the same setting (e.g. OPENBLAS_NUM_THREADS="
            f"{threads} for both)")


def _report(plan: Plan, batch_size: int, cluster: Cluster, calibration: Calibration,
            runtime: str, samples: list[float], shares: list[float],
            blas_threads: int | None = None) -> dict[str, Any]:
    share = max(shares)
    pred = PlanModel(cluster, calibration).predict(plan, batch_size, runtime, blas_threads,
                                                   cpu_share=share)
    measured = min(samples)
    return {"step_time_s": measured, "step_time_samples_s": samples,
            **pred.to_dict(), "predicted_over_measured": pred.step_time / measured,
            "cpu_share_now": share, "cpu_share_samples": shares,
            "blas_threads": pred.assumptions["blas_threads"],
            "calibrated_blas_threads": calibration.blas_threads,
            "cluster_file_host": calibration.host}


def timed_prediction(plan: Plan, params: dict[str, np.ndarray], batch: Batch,
                     cluster: Cluster, calibration: Calibration, backend: str = "numba",
                     repeats: int = REPEATS,
                     threads: ThreadPolicy | None = None) -> dict[str, Any]:
    """Time ``plan.run`` in-process under ``threads`` (default: the ranks' fair share,
    the runtime's own default) and predict it with the same thread count (module
    docstring)."""
    check_int("repeats", repeats)
    batch_size = int(np.shape(batch[0])[0])
    plan.check_batch_size(batch_size)
    policy = ThreadPolicy.fair_share(plan.mesh.world) if threads is None else threads

    def step() -> None:
        plan.run(params, batch, backend=backend, threads=policy)

    samples, shares, cpu = [], [], []
    with retained_heap(HeapPolicy()):  # across the steps, as a training loop holds it
        step()
        for _ in range(repeats):
            shares.append(cpu_share(SHARE_SECONDS))
            wall, thread = wall_and_cpu(step, time.thread_time)
            samples.append(wall)
            cpu.append(thread)
    doc = _report(plan, batch_size, cluster, calibration, "inproc", samples, shares,
                  policy.blas)
    at_full_share = PlanModel(cluster, calibration).predict(plan, batch_size, "inproc",
                                                            policy.blas,
                                                            cpu_share=1.0).step_time
    return {**doc, "step_cpu_time_s": min(cpu), "predicted_cpu_time_s": at_full_share}


def timed_prediction_mpi(plan: Plan, params: dict[str, np.ndarray], batch: Batch,
                         cluster: Cluster, calibration: Calibration, comm: Any,
                         repeats: int = REPEATS, blas_threads: int | None = None,
                         **run_options: Any) -> dict[str, Any] | None:
    """Time ``run_plan_mpi`` on every rank of ``comm``; rank 0 returns the report,
    predicted with ``blas_threads`` per rank (what the ranks' environment set; None: the
    launcher's fair share). ``run_options`` go to
    :func:`~ringpipe.runtime.mpi.run_plan_mpi` (device, ...)."""
    from ringpipe.mpi.loader import load_mpi
    from ringpipe.mpi.mesh_comm import MeshComm
    from ringpipe.runtime.mpi import run_plan_mpi

    check_int("repeats", repeats)
    batch_size = int(np.shape(batch[0])[0])
    plan.check_batch_size(batch_size)
    mc = MeshComm(plan.mesh, comm)
    samples, shares = [], []
    with retained_heap(HeapPolicy()):  # across the steps, as a training loop holds it
        try:
            for i in range(repeats + 1):
                if i:
                    comm.Barrier()
                    shares.append(comm.allreduce(cpu_share(SHARE_SECONDS)) / comm.Get_size())
                step = per_call(lambda: run_plan_mpi(plan, params, batch, mesh_comm=mc,
                                                     **run_options), sync=comm.Barrier)
                dt = comm.allreduce(step, op=load_mpi().MAX)
                if i:
                    samples.append(dt)
        finally:
            mc.free()
    if comm.Get_rank() != 0:
        return None
    return _report(plan, batch_size, cluster, calibration, "mpi", samples, shares,
                   blas_threads)


def format_timing(doc: dict[str, Any]) -> str:
    """One line for the text report."""
    return (f"# step time: measured {doc['step_time_s'] * 1e3:.2f} ms (best of "
            f"{len(doc['step_time_samples_s'])}), predicted "
            f"{doc['predicted_step_time_s'] * 1e3:.2f} ms ({doc['runtime']}), "
            f"predicted/measured {doc['predicted_over_measured']:.2f}")
