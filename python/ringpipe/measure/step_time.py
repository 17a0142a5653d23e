"""Measured versus predicted step time of one plan: what ``verify --cluster-file`` adds.

``step_time_s`` is the best of ``repeats`` timed steps after one warm-up step (on a
shared machine noise only adds time; the minimum is the least disturbed run).
``predicted_step_time_s`` is :meth:`ringpipe.cost.executable.predict.PlanModel.predict` for the same
:class:`ringpipe.Plan`, batch size and runtime, with the calibrated constants of the
cluster file; ``predicted_over_measured`` is their ratio.

The calibrated costs are CPU time; how much of a core a process gets depends on what
else the machine runs at that moment. So just before each timed step every process
spins for about as long as a step takes (:func:`share_window`; all MPI ranks at once),
and the prediction uses the share seen there (``cpu_share_now``,
:func:`pacing_share`, :func:`ringpipe.measure.timer.cpu_share`) instead of the share
seen while calibrating. It is a measurement of the machine, not of the plan.
In-process that is the best share seen, paired with the best step.

Under MPI a sample is the *smallest* share any rank got, and the prediction uses the
median sample, not the best. The ranks of a step wait on each other's messages, so at
every instant the step advances at the pace of the rank the scheduler serves least.
With one other busy process and two ranks on two cores, some rank shares a core with
it at every instant, so the step gets half a core. The probe's ranks, averaging over
the scheduler's rotations, see 0.5–0.67 each, and their mean (2/3) predicted steps a
third too fast. The best of five probes is the most rotated one, which the step does
not get; the median is the typical one.

The timed steps run inside one :func:`~ringpipe.kernels.heap.retained_heap` block, as a
training loop would hold it (each step's result is dropped inside it, so the allocator
does not hand the step's memory back between steps), and are predicted so.

Both run and predict under one thread count per rank
(:class:`~ringpipe.kernels.threads.ThreadPolicy`; by default the fair share the runtimes
give each rank); :func:`thread_warning` is the one line ``verify`` prints when it is not
the count the cluster file was calibrated with, and :func:`mpi_rows_warning` the one it
prints when an MPI run is predicted from a file calibrated without ``--np``.

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

import statistics
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
#: Longest and shortest spin loop (seconds) that measures the CPU share before a timed
#: step; within them, the loop is as long as the warm-up step (:func:`share_window`).
SHARE_SECONDS = 0.3
MIN_SHARE_SECONDS = 0.02


def share_window(step_seconds: float) -> float:
    """Seconds of the share probe before a step that took about ``step_seconds``: as
    long as the step, within [:data:`MIN_SHARE_SECONDS`, :data:`SHARE_SECONDS`]. The
    scheduler moves processes between cores every few tens of milliseconds, so a probe
    much longer than the step averages placements the step never sees: on the 2-core
    development VM, with one other busy process and two MPI ranks, the least-served
    rank's share over 20–100 ms windows is 0.5 in most samples (it shares a core with
    the other process) but over 0.3 s it spreads to 0.5–0.72."""
    return min(SHARE_SECONDS, max(MIN_SHARE_SECONDS, step_seconds))


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


def mpi_rows_warning(calibration: Calibration, source: str) -> str | None:
    """One line when an MPI step is predicted from a cluster file ``source`` that has
    no MPI rows (``calibrate`` without ``--np``); None when it has them. Its messages are
    then priced at the in-process link and the MPI step's fixed cost at zero."""
    if "mpi" in calibration.p2p:
        return None
    return (f"warning: {source} has no MPI rows (it was calibrated without --np), so "
            "this prediction prices MPI messages at the in-process link and no fixed "
            "cost per MPI step; calibrate with --np 2 (or the ranks you run) for MPI")


def pacing_share(shares: list[float], runtime: str) -> float:
    """The share of a core a step of ``runtime`` is predicted with, from the probes
    before its timed steps (module docstring): in-process the best one (paired with the
    best step), under MPI the median of the least-served ranks' shares."""
    if not shares:
        raise ValueError("pacing_share: no share samples")
    if runtime not in ("inproc", "mpi"):
        raise ValueError(f"pacing_share: runtime must be 'inproc' or 'mpi', got {runtime!r}")
    return max(shares) if runtime == "inproc" else statistics.median(shares)


def _report(plan: Plan, batch_size: int, cluster: Cluster, calibration: Calibration,
            runtime: str, samples: list[float], shares: list[float],
            blas_threads: int | None = None) -> dict[str, Any]:
    share = pacing_share(shares, runtime)
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
        window = share_window(wall_and_cpu(step, time.thread_time)[0])
        for _ in range(repeats):
            shares.append(cpu_share(window))
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
    samples, shares, window = [], [], SHARE_SECONDS
    with retained_heap(HeapPolicy()):  # across the steps, as a training loop holds it
        try:
            for i in range(repeats + 1):
                if i:
                    comm.Barrier()
                    shares.append(comm.allreduce(cpu_share(window), op=load_mpi().MIN))
                step = per_call(lambda: run_plan_mpi(plan, params, batch, mesh_comm=mc,
                                                     **run_options), sync=comm.Barrier)
                dt = comm.allreduce(step, op=load_mpi().MAX)
                if i:
                    samples.append(dt)
                else:  # the warm-up step sets the probe's length (share_window)
                    window = share_window(dt)
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
