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
  (:class:`~ringpipe.cost.training.pipeline.PipelineSimulator`).

**Runtimes.** In-process (``"inproc"``) every rank runs in one process, one after
another (:mod:`ringpipe.runtime.inproc`): the step is the *sum* of all ranks' work —
each pipeline rank's worker computes all T TP ranks, each DP replica in turn — plus
every message copy and all-reduce; the bubble costs nothing. Under MPI (``"mpi"``)
ranks run concurrently: the step is the simulator's makespan, then the DP all-reduce,
then the gather of every rank's gradients to rank 0 (:func:`ringpipe.runtime.mpi.
run_plan_mpi`).

**Load.** Compute and in-process communication are calibrated in CPU time; a run gets
only a share σ of a core (:meth:`~ringpipe.cost.hardware.calibration.Calibration.cpu_share`:
measured by ``ringpipe calibrate`` for one process and for its P MPI ranks at once,
otherwise min(σ₁, C/(P·k)) for P processes of k BLAS threads on C cores, the
oversubscription bound). CPU time stretches by ρ = 1/σ; MPI message and collective
times are measured in wall time, contention included, and are not stretched.

**Fresh memory.** A step allocates its activations and gradients anew, and the
allocator hands them back to the kernel when the step ends, so every step first-touches
(page-faults in) the memory it holds at its peak, at the measured cost per byte
(``fresh_memory``, :func:`ringpipe.measure.calibrate.compute.measure_fresh_memory`). A process
holding pipeline rank p's stages pays it for (:func:`fresh_bytes`): the peak of the
activations its forwards keep until their backward (each stage's
:func:`~ringpipe.cost.executable.numpy_ops.held_elements` per micro-batch, added at F and released
at B or W, in the order of ``schedule.actions[p]``), plus its copy of its parameter
shards (:func:`ringpipe.runtime.training.stage_shards` copies them every step) and its
gradient accumulators (the first B/W result of each stage is kept). Arrays allocated
after the pipeline drains (the DP bucket, the result) reuse the freed activation
memory and are not counted. In-process, replicas run one after another and reuse each
other's activation memory but keep their gradients: T·Σₚ(peak + shards) + D·T·Σₚ
gradients. Under MPI each rank pays its own, spread evenly over its F actions; rank 0
also receives and assembles every gradient (2 × the parameters).

Each action also pays the interpreter's dispatch, message routing and counters: the
measured ``action_overhead`` (:mod:`ringpipe.measure.calibrate.probe`), or when a file has none
:data:`ACTION_CALLS` call overheads (an estimate from reading
:mod:`ringpipe.runtime.interpreter`: about 20 dictionary/list operations per action).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ringpipe.cost.executable.numpy_ops import OpList, stage_ops
from ringpipe.cost.hardware.calibration import Calibration
from ringpipe.cost.hardware.cluster import Cluster, Link
from ringpipe.cost.hardware.collectives import CollectiveModel
from ringpipe.cost.hardware.gpu import GpuKernels
from ringpipe.cost.training.pipeline import PipelineSimulator, StageCosts
from ringpipe.schedules import ActionKind
from ringpipe.validation import check_real

if TYPE_CHECKING:
    from ringpipe.plan.training import Plan

ACTION_CALLS = 20
RUNTIMES = ("inproc", "mpi")
#: CPU kernels: no tile/wave quantisation (one "SM", 1×1 tiles), no launch floor, no
#: saturation term (the measured GEMM curve gives each shape's rate).
HOST_KERNELS = GpuKernels(sm_count=1, tile_m=1, tile_n=1, flash_fraction=1.0,
                          launch_overhead=0.0, saturation=0.0)


@dataclass(frozen=True)
class ExecutablePrediction:
    """A predicted step (seconds) and its parts. ``fresh_memory_time`` (first touch of
    the step's new memory) is one more addend in-process; under MPI it is already inside
    ``compute_time`` (the F actions of the busiest pipeline rank) and ``gather_time``
    (rank 0's received gradients), reported for information."""

    runtime: str
    step_time: float
    compute_time: float
    tp_comm_time: float
    pp_comm_time: float
    dp_comm_time: float
    gather_time: float
    oversubscription: float
    fresh_memory_time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"runtime": self.runtime, "predicted_step_time_s": self.step_time,
                "predicted_parts_s": {"compute": self.compute_time,
                                      "tp_comm": self.tp_comm_time,
                                      "pp_comm": self.pp_comm_time,
                                      "dp_comm": self.dp_comm_time,
                                      "gather": self.gather_time,
                                      "fresh_memory": self.fresh_memory_time},
                "oversubscription": self.oversubscription}


@dataclass(frozen=True)
class Pricer:
    """Prices operations on one runtime of a calibrated machine."""

    cluster: Cluster
    calibration: Calibration
    runtime: str
    dtype: str
    gemm_scale: float = 1.0

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return 8 if self.dtype == "float64" else 4

    def compute(self, ops: OpList) -> float:
        """Seconds of ``ops``' GEMMs and memory-bound calls (no communication)."""
        cal, e = self.calibration, self.itemsize
        curve = cal.curve(self.dtype, self.cluster)
        bw, over = cal.memory_bandwidth, cal.call_overhead
        total = 0.0
        for m, n, k, batch in ops.gemms:
            rate = curve.rate(m, n, k) * self.gemm_scale
            total += HOST_KERNELS.gemm_time(m, n, k, rate, bw, batch, e) + over
        for calls, elements in ops.mem:
            per_call = elements * e / calls
            total += calls * (HOST_KERNELS.memory_time(per_call, cal.bandwidth_for(per_call))
                              + over)
        return total + ops.transcendental * cal.transcendental

    def allreduce(self, algorithm: str, elements: float, ranks: int) -> float:
        """One all-reduce of ``elements`` over ``ranks`` (step table, measured link)."""
        if ranks == 1:
            return 0.0
        link = self.calibration.allreduce_link(self.runtime, algorithm, ranks, self.cluster)
        host = replace(self.cluster, nodes=1, gpus_per_node=ranks, intra=link, inter=link)
        cost = CollectiveModel(host).cost("all_reduce", algorithm, elements * self.itemsize,
                                          ranks, pipeline_chunks=1)
        return cost.time + 3 * self.calibration.call_overhead

    def message(self, elements: float, copies: int = 1) -> float:
        """``copies`` point-to-point messages of ``elements`` each."""
        link: Link = self.calibration.p2p_link(self.runtime, self.cluster)
        return copies * link.time(elements * self.itemsize)


def _blas_threads_mpi(world: int, cores: int) -> int:
    return max(1, cores // max(1, world))  # ringpipe.mpi.launch's default


def predict_plan(plan: Plan, batch_size: int, cluster: Cluster, calibration: Calibration,
                 runtime: str, blas_threads: int | None = None,
                 cpu_share: float | None = None) -> ExecutablePrediction:
    """Predicted step of ``plan`` on ``batch_size`` sequences (module docstring).

    ``blas_threads``: BLAS threads per process of the run (default: the calibration's
    in-process, ``ringpipe.mpi.launch``'s cores/P under MPI). ``cpu_share``: the share
    σ of a core each process gets, when known for the moment of the run (default: the
    calibration's).
    """
    if cpu_share is not None:
        check_real("cpu_share", cpu_share, maximum=1.0, positive=True)
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    mesh, cal = plan.mesh, calibration
    b = plan.check_batch_size(batch_size)
    m, tp = plan.microbatches, mesh.tp
    world = mesh.world if runtime == "mpi" else 1
    if blas_threads is None:
        blas_threads = cal.blas_threads if runtime == "inproc" else \
            _blas_threads_mpi(world, cal.cores)
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
    bucket = _largest_bucket(plan)
    fresh = fresh_bytes(plan, held, pricer.itemsize)
    if runtime == "inproc":
        fresh_time = rho * cal.fresh_memory * tp * sum(
            peak + shards + mesh.dp * grads for peak, shards, grads in fresh)
        compute = mesh.dp * m * tp * (sum(fwd) + sum(inp) + sum(wgt))
        tp_comm = mesh.dp * m * (sum(comm_f) + sum(comm_i))
        pp_comm = mesh.dp * m * hops * 2 * (pricer.message(act_elems, tp) + act)
        dp_comm = mesh.pp * tp * pricer.allreduce(plan.allreduce, bucket, mesh.dp)
        gather = _assemble_time(plan, pricer)
        compute, tp_comm, pp_comm, dp_comm, gather = (
            rho * x for x in (compute, tp_comm, pp_comm, dp_comm, gather))
        total = compute + tp_comm + pp_comm + dp_comm + gather + fresh_time
        return ExecutablePrediction(runtime, total, compute, tp_comm, pp_comm, dp_comm,
                                    gather, rho, fresh_time)
    message = pricer.message(act_elems) + act if hops else 0.0
    per_f = [0.0] * nstages
    for p, (peak, shards, grads) in enumerate(fresh):
        mine = plan.schedule.stages_of(p)
        for s in mine:
            per_f[s] = cal.fresh_memory * (peak + shards + grads) / (m * len(mine))
    fwd = [f + x for f, x in zip(fwd, per_f, strict=True)]
    costs = StageCosts(tuple(rho * f + c for f, c in zip(fwd, comm_f, strict=True)),
                       tuple(rho * i + c for i, c in zip(inp, comm_i, strict=True)),
                       tuple(rho * w for w in wgt), message)
    timing = PipelineSimulator().time(plan.schedule_name, mesh.pp, m, plan.chunks, costs)
    tp_comm = m * max(sum(comm_f[s] + comm_i[s] for s in plan.schedule.stages_of(p))
                      for p in range(mesh.pp))
    dp_comm = pricer.allreduce(plan.allreduce, bucket, mesh.dp)
    received = rho * cal.fresh_memory * 2 * plan.config.num_params() * pricer.itemsize
    gather = _gather_time(plan, pricer) + rho * _assemble_time(plan, pricer) + received
    total = timing.makespan + dp_comm + gather
    fresh_time = rho * m * max(sum(per_f[s] for s in plan.schedule.stages_of(p))
                               for p in range(mesh.pp)) + received
    return ExecutablePrediction(runtime, total, timing.makespan - tp_comm, tp_comm,
                                timing.makespan * timing.bubble_fraction, dp_comm, gather,
                                rho, fresh_time)


def fresh_bytes(plan: Plan, held: list[float],
                itemsize: int) -> list[tuple[float, float, float]]:
    """Per pipeline rank p, for one TP rank: (peak bytes of held activations, bytes of
    its parameter shards, bytes of its gradients) — what a step first-touches (module
    docstring). ``held[s]``: elements one forward of stage s keeps."""
    out = []
    for p in range(plan.mesh.pp):
        cur = peak = 0.0
        for a in plan.schedule.actions[p]:
            if a is None:
                continue
            if a.kind is ActionKind.FORWARD:
                cur += held[a.stage]
                peak = max(peak, cur)
            elif a.kind in (ActionKind.FULL_BACKWARD, ActionKind.BACKWARD_WEIGHT):
                cur -= held[a.stage]
        shards = sum(_stage_elements(plan, s) for s in plan.schedule.stages_of(p))
        out.append((peak * itemsize, shards * itemsize, shards * itemsize))
    return out


def _stage_elements(plan: Plan, stage: int) -> int:
    """Elements of one TP rank's shard of ``stage``'s parameters (the stage's
    ``param_shapes`` are its TP rank's)."""
    return sum(math.prod(shape) for shape in plan.stages[stage].param_shapes().values())


def _largest_bucket(plan: Plan) -> int:
    """Elements of the largest DP gradient bucket: one (pp, tp) position's stages."""
    return max(sum(_stage_elements(plan, s) for s in plan.schedule.stages_of(p))
               for p in range(plan.mesh.pp))


def _gather_time(plan: Plan, pricer: Pricer) -> float:
    """Rank 0 receives every other rank of replica 0's gradients (its share of the
    parameters), pickled: a message plus two memory passes each."""
    world0 = plan.mesh.pp * plan.mesh.tp
    share = plan.config.num_params() / world0
    per = pricer.message(share) + HOST_KERNELS.memory_time(
        2 * share * pricer.itemsize, pricer.calibration.memory_bandwidth)
    return (world0 - 1) * per + math.log2(max(1, plan.mesh.world)) * pricer.message(1)


def _assemble_time(plan: Plan, pricer: Pricer) -> float:
    """Full-shape gradients built from the shards: two memory passes over all
    parameters, one call per parameter tensor and rank."""
    n = plan.config.num_params()
    calls = plan.mesh.world * 8 * plan.config.layers
    return HOST_KERNELS.memory_time(3 * n * pricer.itemsize,
                                    pricer.calibration.memory_bandwidth) \
        + calls * pricer.calibration.call_overhead
