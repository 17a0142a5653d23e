"""Serve a :class:`~ringpipe.plan.serving.ServingPlan` on MPI: one process per mesh rank.

Process w is mesh rank w at ``(d, p, t)`` (:class:`~ringpipe.mpi.mesh_comm.MeshComm`).
It keeps TP rank t's inference shard of pipeline rank p's layers and its paged KV shard,
and runs replica d's continuous-batching schedule on the
:class:`~ringpipe.runtime.interpreter.PipelineInterpreter` with the
:class:`~ringpipe.runtime.batching.worker.ServingWorker` in local-rank mode and the
training runtime's :class:`~ringpipe.runtime.mpi.MpiTransport` on the PP communicator
(micro-batch = lane); the layers' all-reduces run the step tables over the TP
communicator. Every process builds the same plan, so the iterations (which requests share
which batch) are the same everywhere without any message about them. Rank 0 gathers the
last ranks' logits and every rank's counters and returns the
:class:`~ringpipe.runtime.batching.inproc.ServingResult`, bitwise the in-process one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ringpipe.model.inference_stage import inference_shards
from ringpipe.mpi.loader import load_mpi
from ringpipe.mpi.mesh_comm import MeshComm
from ringpipe.runtime.batching.inproc import ServingResult, assemble, check_serving_inputs
from ringpipe.runtime.batching.worker import ServingWorker
from ringpipe.runtime.groups import CountedAllReduce, RankTally
from ringpipe.runtime.inference import RankInferenceCounters
from ringpipe.runtime.interpreter import PipelineInterpreter
from ringpipe.runtime.mpi import MpiTransport, communicator_reduce

if TYPE_CHECKING:
    from ringpipe.plan.serving import ServingPlan

__all__ = ["run_serving_mpi"]


def run_serving_mpi(plan: ServingPlan, params: dict[str, np.ndarray], prompts: object,
                    comm: Any = None) -> ServingResult | None:
    """Serve on the processes of ``comm`` (default MPI_COMM_WORLD), one per mesh rank.
    Every process passes the same ``params`` and ``prompts``; rank 0 gets the result."""
    prompts = check_serving_inputs(plan, params, prompts)
    mpi = load_mpi()
    mc = MeshComm(plan.mesh, mpi.COMM_WORLD if comm is None else comm)
    try:
        d, p, t = mc.coord.dp, mc.coord.pp, mc.coord.tp
        schedule, trace = plan.schedules[d], plan.traces[d]
        transport = MpiTransport(mc.pp_comm, trace.lanes, mpi)
        need = 2 * schedule.num_stages * trace.lanes
        if need > transport.tag_ub:
            raise ValueError(f"rank {mc.rank}: {schedule.num_stages} stages × {trace.lanes} "
                             f"lanes need tags up to {need}, above this MPI's TAG_UB "
                             f"{transport.tag_ub}")
        tally = RankTally()
        tp_reduce = CountedAllReduce(communicator_reduce(mc.tp, plan.allreduce),
                                     plan.allreduce, "tp", mc.tp.size, [mc.tp.rank], [tally])
        shard = inference_shards(plan.config, params, plan.mesh.tp)[t]
        worker = ServingWorker(plan.specs[p].local_view(), p, plan.mesh.pp, [shard],
                               tp_reduce, trace, prompts, plan.policy)
        it = PipelineInterpreter(p, schedule.actions[p], schedule.placement, worker,
                                 transport, 1)
        it.run()
        tally.bytes_sent["pp"] = it.bytes_sent[0]
        mine = (RankInferenceCounters(mc.rank, d, p, t, worker.kv_cache_bytes[0], tally.calls,
                                      tally.bytes_sent),
                worker.logits if (p == plan.mesh.pp - 1 and t == 0) else None)
        everyone = mc.comm.gather(mine, root=0)
        if mc.rank != 0:
            return None
        logits: dict = {}
        for _, lg in everyone:
            logits.update(lg or {})
        return assemble(plan, logits, [c for c, _ in everyone])
    finally:
        mc.free()
