"""Operation prices on a calibrated CPU machine, and the sizes an executable plan moves.

:class:`Pricer` prices what one runtime (in-process or MPI) of a calibrated machine
executes: a stage's GEMMs and memory-bound calls (:mod:`ringpipe.cost.executable.numpy_ops`)
on the measured GEMM grid (:class:`~ringpipe.cost.hardware.gemm_table.GemmTable`; the
fitted curve where there is none) and bandwidths (:data:`HOST_KERNELS`: the GPU kernel model
with the GPU-only terms switched off), an all-reduce on its step table with the link
measured for that runtime, algorithm and group size, and point-to-point messages. The
functions below it read sizes off the plan itself: what a step first-touches
(:func:`fresh_bytes`), the largest DP gradient bucket, and the gradients gathered to
rank 0 and reassembled. :mod:`ringpipe.cost.executable.predict` puts them together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ringpipe.cost.executable.numpy_ops import OpList
from ringpipe.cost.hardware.calibration import Calibration
from ringpipe.cost.hardware.cluster import Cluster, Link
from ringpipe.cost.hardware.collectives import CollectiveModel
from ringpipe.cost.hardware.gpu import GpuKernels
from ringpipe.schedules import ActionKind

if TYPE_CHECKING:
    from ringpipe.plan.training import Plan

__all__ = ["ACTION_CALLS", "HOST_KERNELS", "Pricer", "assemble_time", "copy_time",
           "fresh_bytes", "gather_time", "largest_bucket", "rank_copies", "tensor_time"]

ACTION_CALLS = 20
#: CPU kernels: no tile/wave quantisation (one "SM", 1×1 tiles), no launch floor, no
#: saturation term (the measured GEMM grid or curve gives each shape's rate).
HOST_KERNELS = GpuKernels(sm_count=1, tile_m=1, tile_n=1, flash_fraction=1.0,
                          launch_overhead=0.0, saturation=0.0)


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
        rates = cal.gemm_rates(self.dtype, self.cluster)
        bw, over = cal.memory_bandwidth, cal.op_overhead
        total = 0.0
        for m, n, k, batch in ops.gemms:
            rate = rates.rate(m, n, k) * self.gemm_scale
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
        return cost.time + 3 * self.calibration.op_overhead

    def message(self, elements: float, copies: int = 1) -> float:
        """``copies`` point-to-point messages of ``elements`` each."""
        link: Link = self.calibration.p2p_link(self.runtime, self.cluster)
        return copies * link.time(elements * self.itemsize)


def copy_time(pricer: Pricer, nbytes: float) -> float:
    """One copy of ``nbytes`` (read, then written elsewhere) by one thread: 2·bytes at
    the bandwidth measured for the step's bookkeeping copies (``copy_bandwidth_gbs``,
    :func:`ringpipe.measure.calibrate.probe.measure_bookkeeping`), or, in a file without
    it, at what the per-operation curve gives an operation moving that much."""
    if nbytes <= 0:
        return 0.0
    moved = 2.0 * nbytes
    cal = pricer.calibration
    return moved / (cal.copy_bandwidth or cal.bandwidth_for(moved))


def tensor_time(pricer: Pricer, tensors: int) -> float:
    """The per-tensor work of one bookkeeping pass over ``tensors`` parameter tensors
    (``tensor_overhead_us``; one call overhead each in a file without it)."""
    cal = pricer.calibration
    per = cal.tensor_overhead if cal.tensor_overhead is not None else cal.call_overhead
    return tensors * per


def rank_copies(plan: Plan, fresh: list[tuple[float, float, float]],
                pricer: Pricer) -> list[float]:
    """Per pipeline rank, the bookkeeping one TP rank's step does besides its operators:
    its parameter shards copied in (:func:`ringpipe.runtime.training.stage_shards`: per
    tensor, then the bytes) and its gradients packed into the flat DP bucket
    (:meth:`~ringpipe.runtime.training.TrainingWorker.gradient_bucket`, also when there
    is one replica: one call per tensor, then the bytes). ``fresh``: :func:`fresh_bytes`."""
    out = []
    for p, (_, shards, grads) in enumerate(fresh):
        tensors = sum(len(plan.stages[s].param_shapes()) for s in plan.schedule.stages_of(p))
        out.append(tensor_time(pricer, tensors) + copy_time(pricer, shards)
                   + tensors * pricer.calibration.op_overhead + copy_time(pricer, grads))
    return out


def fresh_bytes(plan: Plan, held: list[float],
                itemsize: int) -> list[tuple[float, float, float]]:
    """Per pipeline rank p, for one TP rank: (peak bytes of held activations, bytes of
    its parameter shards, bytes of its gradients) — what a step first-touches (module
    docstring). ``held[s]``: elements one forward of stage s keeps."""
    out = []
    for p in range(plan.mesh.pp):
        cur = peak = 0.0
        for a in (part for act in plan.schedule.actions[p] if act is not None
                  for part in act.parts):
            if a.kind is ActionKind.FORWARD:
                cur += held[a.stage]
                peak = max(peak, cur)
            elif a.kind in (ActionKind.FULL_BACKWARD, ActionKind.BACKWARD_WEIGHT):
                cur -= held[a.stage]
        shards = sum(stage_elements(plan, s) for s in plan.schedule.stages_of(p))
        out.append((peak * itemsize, shards * itemsize, shards * itemsize))
    return out


def stage_elements(plan: Plan, stage: int) -> int:
    """Elements of one TP rank's shard of ``stage``'s parameters (the stage's
    ``param_shapes`` are its TP rank's)."""
    return sum(math.prod(shape) for shape in plan.stages[stage].param_shapes().values())


def largest_bucket(plan: Plan) -> int:
    """Elements of the largest DP gradient bucket: one (pp, tp) position's stages."""
    return max(sum(stage_elements(plan, s) for s in plan.schedule.stages_of(p))
               for p in range(plan.mesh.pp))


def gather_time(plan: Plan, pricer: Pricer) -> float:
    """Rank 0 receives every other rank of replica 0's gradients (its share of the
    parameters), pickled: a message plus one copy each (:func:`copy_time`)."""
    world0 = plan.mesh.pp * plan.mesh.tp
    share = plan.config.num_params() / world0
    per = pricer.message(share) + copy_time(pricer, share * pricer.itemsize)
    return (world0 - 1) * per + math.log2(max(1, plan.mesh.world)) * pricer.message(1)


def assemble_time(plan: Plan, pricer: Pricer) -> float:
    """Full-shape gradients built from the shards: two copies of all parameters (to the
    host and into the joined arrays; :func:`copy_time`) and the per-tensor work of a
    bookkeeping pass over every rank's tensors (:func:`tensor_time`)."""
    n = plan.config.num_params()
    tensors = plan.mesh.tp * sum(len(stage.param_shapes()) for stage in plan.stages)
    return 2 * copy_time(pricer, n * pricer.itemsize) + tensor_time(pricer, tensors)
