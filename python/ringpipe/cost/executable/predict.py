"""Predicted step time of an executable :class:`ringpipe.Plan` on a calibrated machine.

The same cost model the planner uses, fed with the plan that runs:

* **operators**: each stage's F, I and W operations with their real shapes
  (:func:`ringpipe.cost.executable.numpy_ops.stage_ops`, after the plan's own layer split), priced
  by the operator-level functions of :mod:`ringpipe.cost.hardware.gpu`: a GEMM by
  :meth:`~ringpipe.cost.hardware.gpu.GpuKernels.gemm_time` at the measured rate of its shape
  (:class:`~ringpipe.cost.hardware.gemm_curve.GemmCurve`), a memory-bound operation by
  :meth:`~ringpipe.cost.hardware.gpu.GpuKernels.memory_time` at the measured bandwidth. On a CPU a
  call is synchronous, so every call also pays the measured per-call overhead (added,
  not overlapped as a GPU launch is);
* **collectives**: each TP and DP all-reduce priced on the algorithm's step table
  (:class:`~ringpipe.cost.hardware.collectives.CollectiveModel`) with the step link measured
  for that runtime, algorithm and group size (:mod:`ringpipe.cost.hardware.calibration`);
  pipeline messages with the runtime's point-to-point α-β;
* **schedule**: the plan's schedule, p, m and v through the schedule simulator
  (:class:`~ringpipe.cost.training.pipeline.simulator.PipelineSimulator`).

**Runtimes.** In-process (``"inproc"``) every rank runs in one process, one after
another (:mod:`ringpipe.runtime.inproc`): the step is the *sum* of all ranks' work —
each pipeline rank's worker computes all T TP ranks, each DP replica in turn — plus
every message copy and all-reduce; the bubble costs nothing. Under MPI (``"mpi"``)
ranks run concurrently: the step is the simulator's makespan, then the DP all-reduce,
then the gather of every rank's gradients to rank 0 (:func:`ringpipe.runtime.mpi.
run_plan_mpi`), plus what every MPI step pays once whatever its size (the ranks'
agreement on their inputs, the barriers around it: ``mpi_step_overhead_us``, measured
by ``ringpipe calibrate --np``, reported within ``gather``).

**Copies.** Besides its operators a step copies whole parameter-sized arrays: every
rank's shards in, every rank's gradients into its flat DP bucket
(:func:`~ringpipe.cost.executable.pricer.rank_copies`), and the full-shape result out
(:func:`~ringpipe.cost.executable.pricer.assemble_time`). Each is one thread streaming
arrays far larger than its caches, priced at what the measured per-operation curve
gives an operation that large, not at the all-core copy bandwidth (on the development
VM, 6–10 GB/s against 23–27). In-process the ranks' copies add up; under MPI each rank
makes its own at the same time (the slowest rank's), and rank 0 then assembles.

**Load.** Compute and in-process communication are calibrated in CPU time; a run gets
only a share σ of a core (:meth:`~ringpipe.cost.hardware.calibration.Calibration.cpu_share`:
measured by ``ringpipe calibrate`` for one process and for its P MPI ranks at once,
otherwise min(σ₁, C/(P·k)) for P processes of k BLAS threads on C cores, the
oversubscription bound). CPU time stretches by ρ = 1/σ; MPI message and collective
times are measured in wall time, contention included, and are not stretched.

**Fresh memory.** The runtimes keep what a step frees in the process for the step's
next arrays (:mod:`ringpipe.kernels.heap`, the default ``HeapPolicy``), and a training
loop that holds the policy across its steps (``ringpipe verify``'s timing loop does)
keeps it between steps too: after the first step, a step page-faults nothing in, and
nothing is charged for it. Under
``HeapPolicy(retain=False)``, or where the C library is not glibc, every step first-touches
(page-faults in) the memory it holds at its peak, at the measured cost per byte
(``fresh_memory``, :func:`ringpipe.measure.calibrate.compute.measure_fresh_memory`). A process
holding pipeline rank p's stages then pays it for (:func:`fresh_bytes`): the peak of the
activations its forwards keep until their backward (each stage's
:func:`~ringpipe.cost.executable.numpy_ops.held_elements` per micro-batch, added at F and released
at B or W, in the order of ``schedule.actions[p]``), plus its copy of its parameter
shards (:func:`ringpipe.runtime.training.stage_shards` copies them every step) and its
gradient accumulators (the first B/W result of each stage is kept). Arrays allocated
after the pipeline drains (the DP bucket, the result) reuse the freed activation
memory and are not counted. In-process, replicas run one after another and reuse each
other's activation memory but keep their gradients: T·Σₚ(peak + shards) + D·T·Σₚ
gradients. Under MPI each rank pays its own, spread evenly over its F actions; rank 0
also receives and assembles every gradient (2 × the parameters). (glibc's own
thresholds return far more than that peak to the kernel within a step: about three
times its pages, measured; the policy exists so that the runtime does not.)

Each action also pays the interpreter's dispatch, message routing and counters: the
measured ``action_overhead`` (:mod:`ringpipe.measure.calibrate.probe`), or when a file has none
:data:`ACTION_CALLS` call overheads (an estimate from reading
:mod:`ringpipe.runtime.interpreter`: about 20 dictionary/list operations per action).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ringpipe.cost.executable.numpy_ops import stage_ops
from ringpipe.cost.executable.pricer import (
    ACTION_CALLS,
    Pricer,
    assemble_time,
    fresh_bytes,
    gather_time,
    largest_bucket,
    rank_copies,
)
from ringpipe.cost.hardware.calibration import Calibration
from ringpipe.cost.hardware.cluster import Cluster
from ringpipe.cost.training.pipeline.simulator import PipelineSimulator, StageCosts
from ringpipe.kernels.heap import HeapPolicy, heap_is_tunable
from ringpipe.kernels.threads import ThreadPolicy
from ringpipe.validation import check_real

if TYPE_CHECKING:
    from ringpipe.plan.training import Plan

RUNTIMES = ("inproc", "mpi")

@dataclass(frozen=True)
class PlanPrediction:
    """A predicted step (seconds) and its parts. ``fresh_memory_time`` (first touch of
    the step's new memory) is one more addend in-process; under MPI it is already inside
    ``compute_time`` (the F actions of the busiest pipeline rank) and ``gather_time``
    (rank 0's received gradients), reported for information. ``fresh_bytes``: per
    pipeline rank, the bytes one TP rank first-touches (:func:`fresh_bytes`)."""

    runtime: str
    step_time: float
    compute_time: float
    tp_comm_time: float
    pp_comm_time: float
    dp_comm_time: float
    gather_time: float
    oversubscription: float
    fresh_memory_time: float = 0.0
    fresh_bytes: tuple[float, ...] = ()
    copy_time: float = 0.0
    assumptions: Mapping[str, object] = field(default_factory=dict, compare=False)

    @property
    def total_s(self) -> float:
        """The step time, seconds."""
        return self.step_time

    @property
    def breakdown_s(self) -> dict[str, float]:
        """The parts (``predicted_parts_s`` of the JSON form)."""
        return {"compute": self.compute_time, "tp_comm": self.tp_comm_time,
                "pp_comm": self.pp_comm_time, "dp_comm": self.dp_comm_time,
                "gather": self.gather_time, "fresh_memory": self.fresh_memory_time,
                "copies": self.copy_time}

    @property
    def memory_bytes(self) -> dict[str, float]:
        """What the fullest pipeline rank's processes first-touch per step (activations
        held at the peak, parameter shards, gradients): ``total``."""
        return {"total": max(self.fresh_bytes, default=0.0)}

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"runtime": self.runtime, "predicted_step_time_s": self.step_time,
                "predicted_parts_s": self.breakdown_s,
                "oversubscription": self.oversubscription}


def _fair_share(world: int, cores: int) -> int:
    """BLAS threads per rank a run gets by default, in-process and under MPI alike."""
    return ThreadPolicy.fair_share(max(1, world), cores).blas


@dataclass(frozen=True)
class PlanModel:
    """Prices executable plans on one calibrated machine: ``cluster`` and its measured
    ``calibration`` (a calibrated cluster file: :meth:`ClusterFile.calibrated
    <ringpipe.cost.clusterfile.load.ClusterFile.calibrated>`)."""

    cluster: Cluster
    calibration: Calibration

    def __post_init__(self) -> None:
        if not isinstance(self.cluster, Cluster):
            raise TypeError(f"PlanModel.cluster must be a Cluster, got "
                            f"{type(self.cluster).__name__}")
        if not isinstance(self.calibration, Calibration):
            raise TypeError(f"PlanModel.calibration must be a Calibration, got "
                            f"{type(self.calibration).__name__}")

    def predict(self, plan: Plan, batch_size: int, runtime: str = "inproc",
                blas_threads: int | None = None, cpu_share: float | None = None,
                heap: HeapPolicy | None = None) -> PlanPrediction:
        """Predicted step of ``plan`` on ``batch_size`` sequences (module docstring).

        ``runtime``: ``"inproc"`` or ``"mpi"``. ``blas_threads``: BLAS threads per
        rank of the run (default: each of the mesh's ranks' fair share of the
        calibrated machine's cores, what the runtimes give them:
        :meth:`~ringpipe.kernels.threads.ThreadPolicy.fair_share`). ``cpu_share``: the share σ of a
        core each process gets, when known for the moment of the run (default: the
        calibration's). ``heap``: the run's :class:`~ringpipe.kernels.heap.HeapPolicy`
        (default: the runtimes' own, freed memory retained: no fresh-memory term).
        """
        retained = (HeapPolicy() if heap is None else heap).retain and heap_is_tunable()
        return _predict(plan, batch_size, self.cluster, self.calibration, runtime,
                        blas_threads, cpu_share, retained)


def predict_plan(plan: Plan, batch_size: int, cluster: Cluster, calibration: Calibration,
                 runtime: str, blas_threads: int | None = None,
                 cpu_share: float | None = None) -> PlanPrediction:
    """Deprecated: ``PlanModel(cluster, calibration).predict(plan, batch_size, runtime,
    ...)`` (one predictor interface); warns once per calling line."""
    warnings.warn("ringpipe.cost.executable.predict.predict_plan is deprecated; use "
                  "PlanModel(cluster, calibration).predict(plan, batch_size, runtime)",
                  FutureWarning, stacklevel=2)
    return PlanModel(cluster, calibration).predict(plan, batch_size, runtime, blas_threads,
                                                   cpu_share)


def _predict(plan: Plan, batch_size: int, cluster: Cluster, calibration: Calibration,
             runtime: str, blas_threads: int | None, cpu_share: float | None,
             retained: bool) -> PlanPrediction:
    """:meth:`PlanModel.predict`."""
    if cpu_share is not None:
        check_real("cpu_share", cpu_share, maximum=1.0, positive=True)
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if plan.mesh.cp > 1 or plan.mesh.ep > 1 or plan.config.is_moe:
        raise ValueError("the executable-plan predictor prices dp × pp × tp plans of dense "
                         f"models; this plan has cp={plan.mesh.cp}, ep={plan.mesh.ep}, "
                         f"experts={plan.config.experts} (ringpipe plan prices those)")
    mesh, cal = plan.mesh, calibration
    b = plan.check_batch_size(batch_size)
    m, tp = plan.microbatches, mesh.tp
    world = mesh.world if runtime == "mpi" else 1
    if blas_threads is None:
        blas_threads = _fair_share(mesh.world, cal.cores)
    rho = 1.0 / (cal.cpu_share(world, blas_threads) if cpu_share is None else cpu_share)
    pricer = Pricer(cluster, cal, runtime, plan.config.dtype,
                    min(1.0, blas_threads / cal.blas_threads))
    act = cal.action_overhead if cal.action_overhead is not None else \
        ACTION_CALLS * cal.call_overhead
    nstages = len(plan.layers_per_stage)
    fwd, inp, wgt, comm_f, comm_i, held = [], [], [], [], [], []
    for s, layers in enumerate(plan.layers_per_stage):
        ops = stage_ops(plan.config, tp, layers, s == 0, s == nstages - 1, b)
        held.append(ops.held)
        fwd.append(pricer.compute(ops.forward) + act)
        inp.append(pricer.compute(ops.backward_input) + act)
        wgt.append(pricer.compute(ops.backward_weight) + act)
        comm_f.append(sum(pricer.allreduce(plan.allreduce, x, tp) for x in ops.forward.allreduces))
        comm_i.append(sum(pricer.allreduce(plan.allreduce, x, tp)
                          for x in ops.backward_input.allreduces))
    act_elems = b * plan.config.seq * plan.config.hidden
    placement = plan.schedule.placement
    hops = sum(placement[s] != placement[s + 1] for s in range(nstages - 1))
    bucket = largest_bucket(plan)
    fresh = fresh_bytes(plan, held, pricer.itemsize)
    held_bytes = tuple(sum(rank) for rank in fresh)
    per_byte = 0.0 if retained else cal.fresh_memory
    assumptions = {"runtime": runtime, "blas_threads": blas_threads,
                   "cpu_share": 1.0 / rho, "cores": cal.cores,
                   "calibrated_blas_threads": cal.blas_threads,
                   "batch_size": batch_size, "microbatch_size": b,
                   "heap_retained": retained}
    if runtime == "inproc":
        fresh_time = rho * per_byte * tp * sum(
            peak + shards + mesh.dp * grads for peak, shards, grads in fresh)
        compute = mesh.dp * m * tp * (sum(fwd) + sum(inp) + sum(wgt))
        tp_comm = mesh.dp * m * (sum(comm_f) + sum(comm_i))
        pp_comm = mesh.dp * m * hops * 2 * (pricer.message(act_elems, tp) + act)
        dp_comm = mesh.pp * tp * pricer.allreduce(plan.allreduce, bucket, mesh.dp)
        gather = assemble_time(plan, pricer)
        copies = mesh.dp * tp * sum(rank_copies(plan, fresh, pricer))
        compute, tp_comm, pp_comm, dp_comm, gather, copies = (
            rho * x for x in (compute, tp_comm, pp_comm, dp_comm, gather, copies))
        total = compute + tp_comm + pp_comm + dp_comm + gather + fresh_time + copies
        return PlanPrediction(runtime, total, compute, tp_comm, pp_comm, dp_comm, gather,
                              rho, fresh_time, held_bytes, copies, assumptions)
    message = pricer.message(act_elems) + act if hops else 0.0
    per_f = [0.0] * nstages
    for p, (peak, shards, grads) in enumerate(fresh):
        mine = plan.schedule.stages_of(p)
        for s in mine:
            per_f[s] = per_byte * (peak + shards + grads) / (m * len(mine))
    fwd = [f + x for f, x in zip(fwd, per_f, strict=True)]
    costs = StageCosts(tuple(rho * f + c for f, c in zip(fwd, comm_f, strict=True)),
                       tuple(rho * i + c for i, c in zip(inp, comm_i, strict=True)),
                       tuple(rho * w for w in wgt), message)
    timing = PipelineSimulator().time(plan.schedule_name, mesh.pp, m, plan.chunks, costs)
    tp_comm = m * max(sum(comm_f[s] + comm_i[s] for s in plan.schedule.stages_of(p))
                      for p in range(mesh.pp))
    dp_comm = pricer.allreduce(plan.allreduce, bucket, mesh.dp)
    received = rho * per_byte * 2 * plan.config.num_params() * pricer.itemsize
    gather = gather_time(plan, pricer) + rho * assemble_time(plan, pricer) + received
    copies = rho * max(rank_copies(plan, fresh, pricer))
    gather += cal.mpi_step_overhead
    total = timing.makespan + dp_comm + gather + copies
    fresh_time = rho * m * max(sum(per_f[s] for s in plan.schedule.stages_of(p))
                               for p in range(mesh.pp)) + received
    # the busiest rank's F, I and W actions, summed directly (never the makespan minus
    # the communication: that difference cancels to noise when communication dominates)
    compute = m * max(sum(rho * (fwd[s] + inp[s] + wgt[s]) for s in plan.schedule.stages_of(p))
                      for p in range(mesh.pp))
    return PlanPrediction(runtime, total, compute, tp_comm,
                          timing.makespan * timing.bubble_fraction, dp_comm, gather, rho,
                          fresh_time, held_bytes, copies, assumptions)
