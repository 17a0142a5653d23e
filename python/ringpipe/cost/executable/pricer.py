"""Operation prices on a calibrated CPU machine, and the sizes an executable plan moves.

:class:`Pricer` prices what one runtime (in-process or MPI) of a calibrated machine
executes: a stage's GEMMs and memory-bound calls (:mod:`ringpipe.cost.executable.numpy_ops`)
on the measured GEMM curve and bandwidths (:data:`HOST_KERNELS`: the GPU kernel model
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

__all__ = ["ACTION_CALLS", "HOST_KERNELS", "Pricer", "assemble_time", "fresh_bytes",
           "gather_time", "largest_bucket"]

ACTION_CALLS = 20
#: CPU kernels: no tile/wave quantisation (one "SM", 1×1 tiles), no launch floor, no
#: saturation term (the measured GEMM curve gives each shape's rate).
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
    parameters), pickled: a message plus two memory passes each."""
    world0 = plan.mesh.pp * plan.mesh.tp
    share = plan.config.num_params() / world0
    per = pricer.message(share) + HOST_KERNELS.memory_time(
        2 * share * pricer.itemsize, pricer.calibration.memory_bandwidth)
    return (world0 - 1) * per + math.log2(max(1, plan.mesh.world)) * pricer.message(1)


def assemble_time(plan: Plan, pricer: Pricer) -> float:
    """Full-shape gradients built from the shards: two memory passes over all
    parameters, one call per parameter tensor and rank."""
    n = plan.config.num_params()
    calls = plan.mesh.world * 8 * plan.config.layers
    return HOST_KERNELS.memory_time(3 * n * pricer.itemsize,
                                    pricer.calibration.memory_bandwidth) \
        + calls * pricer.calibration.call_overhead
