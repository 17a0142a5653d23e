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

from ringpipe.kernels.threads import ThreadPolicy, check_threads
from ringpipe.mpi.loader import load_mpi
from ringpipe.mpi.mesh_comm import MeshComm
from ringpipe.runtime.batching.inproc import ServingResult, assemble, check_serving_inputs
from ringpipe.runtime.batching.worker import ServingWorker
from ringpipe.runtime.inference_mpi import run_decode_rank

if TYPE_CHECKING:
    from ringpipe.plan.serving import ServingPlan

__all__ = ["run_serving_mpi"]


def run_serving_mpi(plan: ServingPlan, params: dict[str, np.ndarray], prompts: object,
                    comm: Any = None,
                    threads: ThreadPolicy | None = None) -> ServingResult | None:
    """Serve on the processes of ``comm`` (default MPI_COMM_WORLD), one per mesh rank,
    each computing with ``threads`` (default: the node's fair share). Every process
    passes the same ``params`` and ``prompts``; rank 0 gets the result."""
    prompts = check_serving_inputs(plan, params, prompts)
    check_threads("run_serving_mpi", threads)
    mpi = load_mpi()
    mc = MeshComm(plan.mesh, mpi.COMM_WORLD if comm is None else comm)
    try:
        d = mc.coord.dp
        schedule, trace = plan.schedules[d], plan.traces[d]
        everyone = run_decode_rank(
            mc, mpi, plan, schedule, trace.lanes, "lanes", params,
            lambda p, shard, reduce: ServingWorker(plan.specs[p].local_view(), p,
                                                   plan.mesh.pp, [shard], reduce, trace,
                                                   prompts, plan.policy),
            threads)
        if everyone is None:
            return None
        logits: dict = {}
        for _, lg in everyone:
            logits.update(lg or {})
        return assemble(plan, logits, [c for c, _ in everyone])
    finally:
        mc.free()
