"""Execute a Plan on in-process ranks: queues for a transport, one interpreter per rank.

Every pipeline rank is a :class:`~ringpipe.runtime.interpreter.PipelineInterpreter`
running its own action list with a :class:`~ringpipe.runtime.training.TrainingWorker`
that holds every mesh rank of its pipeline position — all T TP ranks of every CP rank
of every data-parallel replica (:func:`pipeline_ranks`): the layers' collectives need
them together (:mod:`ringpipe.model.stage` takes per-rank lists; the TP all-reduce, the
CP ring and the EP all-to-all run group by group among them,
:class:`~ringpipe.runtime.layer_comm.InprocLayerComm`). Every replica runs the same
schedule, so they advance in lockstep. The transport is a set of in-memory channels: a
send copies the payload into the channel to the receiving rank (the wire: no shared
memory), and a batch finishes once every message it waits for is there. A round-robin
loop advances each rank until it waits on a message; no progress with work left is a
deadlock, reported with each rank's position. Nothing here depends on the schedule.

After the pipeline drains, each rank's dense gradients (one bucket, the layout of
:meth:`~ringpipe.runtime.training.TrainingWorker.gradient_bucket`) are all-reduced over
its DP × CP group, as DDP does, its expert gradients over its expert-data-parallel group,
and :func:`~ringpipe.runtime.result.assemble_result` builds the result exactly as the
MPI runtime does.

**Devices.** With ``backend="cupy"`` the TP shards are uploaded once (shared by the DP
replicas, which run one after another), every micro-batch is uploaded, and from there
activations, messages, gradients and all-reduces (the CUDA step-table kernel) stay in
GPU memory; the model maths runs on CuPy through :mod:`ringpipe.arrays`. Only the
reduced gradient buckets, the head outputs and the losses come back to the host, so
:class:`~ringpipe.runtime.result.PlanResult` always holds NumPy arrays. Under Numba's
CUDA simulator the "device" is the host (:mod:`ringpipe.kernels.cuda.backend`) and only
the all-reduces change, to the simulated CUDA kernel.

**Threads.** The step runs under a :class:`~ringpipe.kernels.threads.ThreadPolicy`
(``threads``; default: each of the mesh's ranks gets its fair share of the cores,
:meth:`~ringpipe.kernels.threads.ThreadPolicy.fair_share`, as MPI ranks do), applied to
the BLAS and Numba thread pools for the duration of the step and then restored
(:func:`~ringpipe.kernels.threads.limit_threads`). Without it, BLAS would use a thread
per core for every rank, and on a machine that runs anything else its spinning workers
lose their cores to that work: a step then takes several times longer than its CPU
time says. The layers' all-reduces run between BLAS matmuls, whose worker threads keep
spinning for a while after each call; waking Numba's thread pool then oversubscribes
the cores (measured here: 10 ms instead of 0.3 ms for a 2 × 512 KiB all-reduce), so
the Numba kernel runs single-threaded (:data:`RUNTIME_TUNING`).

**Memory.** The step also runs under a :class:`~ringpipe.kernels.heap.HeapPolicy`
(``heap``; default: the C allocator keeps what the step frees for the step's next
arrays instead of handing it back to the kernel and faulting it in again,
:func:`~ringpipe.kernels.heap.retained_heap`); MPI ranks do the same
(:func:`ringpipe.runtime.mpi.run_plan_mpi`).
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from ringpipe.arrays import array_module, to_host
from ringpipe.collectives.api import all_reduce
from ringpipe.kernels.cuda.backend import gpu_arrays
from ringpipe.kernels.heap import HeapPolicy, retained_heap
from ringpipe.kernels.numba_exec import KernelTuning
from ringpipe.kernels.threads import ThreadPolicy, limit_threads
from ringpipe.mesh import Mesh
from ringpipe.model.params import check_params
from ringpipe.runtime.groups import CountedAllReduce, RankTally
from ringpipe.runtime.interpreter import Key, PipelineInterpreter, Recv, Send
from ringpipe.runtime.layer_comm import InprocLayerComm
from ringpipe.runtime.result import (
    Batch,
    PlanResult,
    RankCounters,
    RankOutput,
    assemble_result,
    holds_grads,
)
from ringpipe.runtime.training import TrainingWorker, rank_microbatches, stage_shards

if TYPE_CHECKING:
    from ringpipe.plan.training import Plan

#: Kernel tuning for all-reduces issued between matmuls: never wake the thread pool.
RUNTIME_TUNING = KernelTuning(parallel_min_bytes=1 << 62)


class QueueTransport:
    """In-memory channels between the pipeline ranks of one replica.

    ``channels[(src, dst)]`` maps message keys to payloads; a send deposits a copy, a
    batch finishes once all its keys have arrived from their senders.
    """

    def __init__(self, rank: int, channels: dict[tuple[int, int], dict[Key, list]]) -> None:
        self.rank, self.channels = rank, channels

    def start(self, sends: list[Send], recvs: list[Recv]) -> list[Recv]:
        for m in sends:
            self.channels[(self.rank, m.peer)][m.key] = [x.copy() for x in m.payload]
        return recvs

    def finish(self, handle: object) -> dict[Key, list] | None:
        recvs: list[Recv] = handle  # type: ignore[assignment]
        if any(r.key not in self.channels[(r.peer, self.rank)] for r in recvs):
            return None
        return {r.key: self.channels[(r.peer, self.rank)].pop(r.key) for r in recvs}


def compute_module(backend: str) -> ModuleType:
    """The array module a plan computes with on ``backend``: NumPy, or for "cupy" the
    GPU backend's (CuPy; NumPy under the CUDA simulator). ImportError if it cannot run."""
    return gpu_arrays("Plan.run").xp if backend == "cupy" else np


def run_replica(d: int, ranks: list[PipelineInterpreter]) -> None:
    """Round-robin over the pipeline ranks until every program has finished (``d`` names
    the replica, or -1 when the ranks hold every replica, in the deadlock report)."""
    while not all(r.done for r in ranks):
        if not any([r.advance() for r in ranks]):  # a list: advance every rank each round
            stuck = ", ".join(f"rank {r.rank} at unit {r.pc} ({r.next_action})"
                              for r in ranks if not r.done)
            where = f"replica {d}" if d >= 0 else "pipeline"
            raise RuntimeError(f"{where}: deadlock: {stuck}")


def pipeline_ranks(mesh: Mesh, p: int) -> list[int]:
    """The mesh ranks of pipeline position ``p``, in rank order (every d, c, t)."""
    return [mesh.rank(d, p, t, c) for d in range(mesh.dp) for c in range(mesh.cp)
            for t in range(mesh.tp)]


def run_inprocess(plan: Plan, params: dict[str, np.ndarray], batch: Batch | tuple,
                  backend: str, threads: ThreadPolicy | None = None,
                  heap: HeapPolicy | None = None) -> PlanResult:
    """Run ``plan`` forward and backward under ``threads`` (default: the fair share of
    the mesh's ranks) and ``heap`` (default: freed memory stays in the process for the
    step); see the module docstring."""
    check_params(plan.config, params)
    policy = ThreadPolicy.fair_share(plan.mesh.world) if threads is None else threads
    with limit_threads(policy), retained_heap(HeapPolicy() if heap is None else heap):
        return _run(plan, params, batch, backend)


def _run(plan: Plan, params: dict[str, np.ndarray], batch: Batch | tuple,
         backend: str) -> PlanResult:
    xp = compute_module(backend)
    mesh = plan.mesh
    reduce = partial(all_reduce, algorithm=plan.allreduce, backend=backend,
                     tuning=RUNTIME_TUNING)
    tally = [RankTally() for _ in range(mesh.world)]
    channels: dict[tuple[int, int], dict[Key, list]] = defaultdict(dict)
    interpreters = []
    for p in range(mesh.pp):
        ranks = pipeline_ranks(mesh, p)
        comm = InprocLayerComm(mesh, ranks, reduce, plan.allreduce, [tally[r] for r in ranks],
                               backend, RUNTIME_TUNING)
        inputs, targets, scale = rank_microbatches(plan, batch, ranks, xp.asarray)
        worker = TrainingWorker(plan, p, ranks, stage_shards(plan, params, p, ranks, xp.asarray),
                                comm, inputs, targets, scale)
        interpreters.append(PipelineInterpreter(p, plan.schedule.actions[p],
                                                plan.schedule.placement, worker,
                                                QueueTransport(p, channels), len(ranks)))
    run_replica(-1 if mesh.dp > 1 else 0, interpreters)
    outputs = []
    for p, it in enumerate(interpreters):
        worker: TrainingWorker = it.worker  # type: ignore[assignment]
        grads = _reduce_gradients(plan, worker, reduce, tally)
        for i, r in enumerate(worker.ranks):
            d, _, t, c = mesh.coord(r)
            tally[r].bytes_sent["pp"] = it.bytes_sent[i]
            counters = RankCounters(r, d, p, t, it.peak, tally[r].bytes_sent, tally[r].calls, c)
            holds = t == 0 and bool(worker.losses)
            outputs.append((r, RankOutput(
                counters, grads[i] if holds_grads(mesh, r) else None,
                {mb: v[i] for mb, v in worker.losses.items()} if holds else None,
                {mb: v[i] for mb, v in worker.outputs.items()} if holds else None,
                sum(v[i] for v in worker.aux.values()) if t == 0 else 0.0)))
    outputs.sort(key=lambda item: item[0])
    return assemble_result(plan, [out for _, out in outputs])


def _reduce_gradients(plan: Plan, worker: TrainingWorker, reduce: partial,
                      tally: list[RankTally]) -> list[dict[int, dict]]:
    """All-reduce every rank's gradient buckets — the dense one over its DP × CP group,
    the expert one over its EDP group — and return each rank's reduced gradients
    ``{stage: {name: host array}}``, in the order of ``worker.ranks``."""
    mesh, ranks = plan.mesh, worker.ranks
    index = {r: i for i, r in enumerate(ranks)}
    first = next(iter(worker.grads.values()))[0]
    xp = array_module(first[next(iter(first))])
    out: list[dict[int, dict]] = [{s: {} for s in worker.grads} for _ in ranks]
    for kind, axis, counted in (("dense", "dp_cp", "dp"), ("expert", "edp", "edp")):
        if not worker.has_bucket(kind):
            continue
        done: set[int] = set()
        for r in ranks:
            if r in done:
                continue
            group = mesh.group(axis, r)
            done.update(group)
            members = [index[m] for m in group]
            buckets = [worker.gradient_bucket(i, xp, kind) for i in members]
            CountedAllReduce(reduce, plan.allreduce, counted, len(group), range(len(group)),
                             [tally[m] for m in group])(buckets)
            for i, bucket in zip(members, buckets, strict=True):
                for s, grads in worker.unpack_bucket(i, to_host(bucket), kind).items():
                    out[i][s].update(grads)
    return out
