"""Execute a Plan on in-process ranks: queues for a transport, one interpreter per rank.

Every pipeline rank of every data-parallel replica is a
:class:`~ringpipe.runtime.interpreter.PipelineInterpreter` running its own action list
with a :class:`~ringpipe.runtime.training.TrainingWorker` that holds all T TP ranks of
its stages (the layers' all-reduces need all of them: :mod:`ringpipe.model.stage` takes
per-tp-rank lists). The transport is a set of in-memory channels: a send copies the
payload into the channel to the receiving rank (the wire: no shared memory), and a batch
finishes once every message it waits for is there. A round-robin loop advances each rank
until it waits on a message; no progress with work left is a deadlock, reported with
each rank's position. Nothing here depends on the schedule.

After the pipeline drains, each (pp, tp) position's gradients (one bucket, the layout of
:meth:`~ringpipe.runtime.training.TrainingWorker.gradient_bucket`) are all-reduced over
the DP group, as DDP does, and :func:`~ringpipe.runtime.result.assemble_result` builds
the result exactly as the MPI runtime does.

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
from ringpipe.kernels.numba_exec import KernelTuning
from ringpipe.kernels.threads import ThreadPolicy, limit_threads
from ringpipe.model.params import check_params
from ringpipe.runtime.groups import CountedAllReduce, RankTally
from ringpipe.runtime.interpreter import Key, PipelineInterpreter, Recv, Send
from ringpipe.runtime.result import Batch, PlanResult, RankCounters, RankOutput, assemble_result
from ringpipe.runtime.training import TrainingWorker, microbatches, stage_shards

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
    """Round-robin over the replica's ranks until every program has finished."""
    while not all(r.done for r in ranks):
        if not any([r.advance() for r in ranks]):  # a list: advance every rank each round
            stuck = ", ".join(f"rank {r.rank} at unit {r.pc} ({r.next_action})"
                              for r in ranks if not r.done)
            raise RuntimeError(f"replica {d}: deadlock: {stuck}")


def run_inprocess(plan: Plan, params: dict[str, np.ndarray], batch: Batch | tuple,
                  backend: str, threads: ThreadPolicy | None = None) -> PlanResult:
    """Run ``plan`` forward and backward under ``threads`` (default: the fair share of
    the mesh's ranks); see the module docstring."""
    check_params(plan.config, params)
    policy = ThreadPolicy.fair_share(plan.mesh.world) if threads is None else threads
    with limit_threads(policy):
        return _run(plan, params, batch, backend)


def _run(plan: Plan, params: dict[str, np.ndarray], batch: Batch | tuple,
         backend: str) -> PlanResult:
    xp = compute_module(backend)
    mesh = plan.mesh
    reduce = partial(all_reduce, algorithm=plan.allreduce, backend=backend,
                     tuning=RUNTIME_TUNING)
    tally = [RankTally() for _ in range(mesh.world)]
    all_tp = range(mesh.tp)
    shards = {p: stage_shards(plan, params, p, all_tp, xp.asarray) for p in range(mesh.pp)}
    interpreters: list[list[PipelineInterpreter]] = []  # [d][p]
    for d in range(mesh.dp):
        inputs, targets, scale = microbatches(plan, batch, d, xp.asarray)
        channels: dict[tuple[int, int], dict[Key, list]] = defaultdict(dict)
        ranks = []
        for p in range(mesh.pp):
            tallies = [tally[mesh.rank(d, p, t)] for t in all_tp]
            tp_reduce = CountedAllReduce(reduce, plan.allreduce, "tp", mesh.tp, all_tp, tallies)
            worker = TrainingWorker(plan, p, shards[p], tp_reduce, inputs, targets, scale,
                                    local=False)
            ranks.append(PipelineInterpreter(p, plan.schedule.actions[p],
                                             plan.schedule.placement, worker,
                                             QueueTransport(p, channels), mesh.tp))
        run_replica(d, ranks)
        interpreters.append(ranks)
    grads = _reduce_data_parallel(plan, interpreters, reduce, tally)
    outputs = []
    for r in range(mesh.world):
        d, p, t = mesh.coord(r)
        it = interpreters[d][p]
        tally[r].bytes_sent["pp"] = it.bytes_sent[t]
        worker: TrainingWorker = it.worker  # type: ignore[assignment]
        counters = RankCounters(r, d, p, t, it.peak, tally[r].bytes_sent, tally[r].calls)
        holds = t == 0 and bool(worker.losses)
        outputs.append(RankOutput(counters, grads.get((p, t)) if d == 0 else None,
                                  worker.losses if holds else None,
                                  worker.outputs if holds else None))
    return assemble_result(plan, outputs)


def _reduce_data_parallel(plan: Plan, interpreters: list[list[PipelineInterpreter]],
                          reduce: partial, tally: list[RankTally]) -> dict[tuple[int, int], dict]:
    """DP all-reduce of one gradient bucket per (pp, tp) position; returns replica 0's
    reduced gradients ``{(p, t): {stage: {name: host array}}}``."""
    mesh = plan.mesh
    out = {}
    for p in range(mesh.pp):
        for t in range(mesh.tp):
            workers: list[TrainingWorker] = [interpreters[d][p].worker  # type: ignore[misc]
                                             for d in range(mesh.dp)]
            first = next(iter(workers[0].grads.values()))[t]
            xp = array_module(first[next(iter(first))])
            buckets = [w.gradient_bucket(t, xp) for w in workers]
            tallies = [tally[mesh.rank(d, p, t)] for d in range(mesh.dp)]
            CountedAllReduce(reduce, plan.allreduce, "dp", mesh.dp, range(mesh.dp),
                             tallies)(buckets)
            out[(p, t)] = workers[0].unpack_bucket(t, to_host(buckets[0]))
    return out
