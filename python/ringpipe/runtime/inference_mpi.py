"""Greedy generation on MPI processes: one per mesh rank, the same interpreter and worker.

Process w is mesh rank w at ``(d, p, t)`` (:class:`~ringpipe.mpi.mesh_comm.MeshComm`).
It keeps only TP rank t's inference shard of pipeline rank p's layers and runs
:class:`~ringpipe.runtime.inference.InferenceWorker` in local-rank mode (payload lists
of length 1) on the :class:`~ringpipe.runtime.interpreter.PipelineInterpreter` with the
training runtime's :class:`~ringpipe.runtime.mpi.MpiTransport` on the PP communicator;
the layers' all-reduces run the step tables over the TP communicator. The token
hand-back from the last to the first pipeline rank is an ordinary tagged message.

The last pipeline rank's TP rank 0 of each replica holds the logits; rank 0 gathers
them with every rank's counters and returns the
:class:`~ringpipe.runtime.inference.InferenceResult` (None on the other ranks), which
is bitwise the in-process runtime's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ringpipe.kernels.threads import ThreadPolicy, check_threads, limit_threads
from ringpipe.model.inference_stage import inference_shards
from ringpipe.mpi.loader import load_mpi
from ringpipe.mpi.mesh_comm import MeshComm
from ringpipe.runtime.groups import CountedAllReduce, RankTally
from ringpipe.runtime.inference import (
    InferenceResult,
    InferenceWorker,
    RankInferenceCounters,
    assemble,
    check_inputs,
    replica_prompts,
)
from ringpipe.runtime.interpreter import PipelineInterpreter
from ringpipe.runtime.mpi import MpiTransport, communicator_reduce

if TYPE_CHECKING:
    from ringpipe.plan.inference import InferencePlan
    from ringpipe.plan.serving import ServingPlan
    from ringpipe.schedules.schedule import Schedule

__all__ = ["run_decode_rank", "run_inference_mpi"]


def run_decode_rank(mc: MeshComm, mpi: Any, plan: InferencePlan | ServingPlan,  # noqa: ANN401
                    schedule: Schedule, lanes: int, what: str,
                    params: dict[str, np.ndarray],
                    make_worker: Callable[[int, dict, CountedAllReduce], Any],
                    threads: ThreadPolicy | None = None
                    ) -> list[tuple[RankInferenceCounters, Any]] | None:
    """This process's part of a forward-only decode-style ``schedule`` (generation or
    continuous batching): the PP transport with ``lanes`` micro-batches (``what`` names
    them in the TAG_UB check), the counted TP all-reduce, TP rank t's shard of the
    layers, ``make_worker(p, shard, tp_reduce)`` on the interpreter. Rank 0 gets every
    rank's ``(counters, logits)`` (logits from the last pipeline rank's TP rank 0, else
    None); the other ranks get None. The rank computes with ``threads`` (default: its
    node's fair share of the cores,
    :meth:`~ringpipe.kernels.threads.ThreadPolicy.node_share`)."""
    d, p, t = mc.coord.dp, mc.coord.pp, mc.coord.tp
    transport = MpiTransport(mc.pp_comm, lanes, mpi)
    need = 2 * schedule.num_stages * lanes
    if need > transport.tag_ub:
        raise ValueError(f"rank {mc.rank}: {schedule.num_stages} stages × {lanes} {what} "
                         f"need tags up to {need}, above this MPI's TAG_UB {transport.tag_ub}")
    tally = RankTally()
    tp_reduce = CountedAllReduce(communicator_reduce(mc.tp, plan.allreduce),
                                 plan.allreduce, "tp", mc.tp.size, [mc.tp.rank], [tally])
    shard = inference_shards(plan.config, params, plan.mesh.tp)[t]
    worker = make_worker(p, shard, tp_reduce)
    it = PipelineInterpreter(p, schedule.actions[p], schedule.placement, worker, transport, 1)
    with limit_threads(ThreadPolicy.node_share(mc.local_ranks) if threads is None
                       else threads):
        it.run()
    tally.bytes_sent["pp"] = it.bytes_sent[0]
    mine = (RankInferenceCounters(mc.rank, d, p, t, worker.kv_cache_bytes[0], tally.calls,
                                  tally.bytes_sent),
            worker.logits if (p == plan.mesh.pp - 1 and t == 0) else None)
    return mc.comm.gather(mine, root=0)


def run_inference_mpi(plan: InferencePlan, params: dict[str, np.ndarray], prompts: np.ndarray,
                      comm: Any = None,
                      threads: ThreadPolicy | None = None) -> InferenceResult | None:
    """Generate on the processes of ``comm`` (default MPI_COMM_WORLD), one per mesh rank,
    each computing with ``threads`` (default: the node's fair share). Every process
    passes the same ``params`` and ``prompts``; rank 0 gets the result."""
    prompts = check_inputs(plan, params, prompts)
    check_threads("run_inference_mpi", threads)
    mpi = load_mpi()
    mc = MeshComm(plan.mesh, mpi.COMM_WORLD if comm is None else comm)
    try:
        mine = replica_prompts(plan, prompts, mc.coord.dp)
        everyone = run_decode_rank(
            mc, mpi, plan, plan.schedule, plan.groups, "groups", params,
            lambda p, shard, reduce: InferenceWorker(plan, p, [shard], reduce, mine, True),
            threads)
        if everyone is None:
            return None
        logits = {c.dp: lg for c, lg in everyone if lg is not None}
        return assemble(plan, logits, sorted((c for c, _ in everyone), key=lambda c: c.rank))
    finally:
        mc.free()
