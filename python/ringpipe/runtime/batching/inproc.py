"""Serve a :class:`~ringpipe.plan.serving.ServingPlan` on in-process ranks.

Each DP replica's pipeline ranks run their replica's continuous-batching schedule on the
one :class:`~ringpipe.runtime.interpreter.PipelineInterpreter` over the in-memory queues of
:mod:`ringpipe.runtime.inproc`, with a :class:`~ringpipe.runtime.batching.worker.
ServingWorker` holding all T TP ranks of its layers; :mod:`.mpi` runs one process per
rank with the same worker and gets the same bits. :func:`assemble` builds the
:class:`ServingResult` both return.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from ringpipe.collectives.api import all_reduce
from ringpipe.model.inference_stage import inference_shards
from ringpipe.model.params import check_params
from ringpipe.runtime.batching.worker import ServingWorker
from ringpipe.runtime.groups import CountedAllReduce, RankTally
from ringpipe.runtime.inference import RankInferenceCounters
from ringpipe.runtime.inproc import RUNTIME_TUNING, QueueTransport, compute_module, run_replica
from ringpipe.runtime.interpreter import Key, PipelineInterpreter

if TYPE_CHECKING:
    from ringpipe.plan.serving import ServingPlan

__all__ = ["ServingResult", "assemble", "check_serving_inputs", "run_inprocess_serving"]


@dataclass(frozen=True)
class ServingResult:
    """Per request id: ``tokens[i]`` ``(K_i,)`` greedy ids and ``logits[i]`` ``(K_i,
    vocab)``; and counters per mesh rank (its paged KV-cache bytes)."""

    tokens: tuple[np.ndarray, ...]
    logits: tuple[np.ndarray, ...]
    counters: tuple[RankInferenceCounters, ...]


def check_serving_inputs(plan: ServingPlan, params: dict,
                         prompts: object) -> dict[int, np.ndarray]:
    """Check parameters and prompts (before any rank starts): ``prompts`` maps (or lists,
    by id) each request's ``(L,)`` integer ids in [0, vocab); returns ``{id: ids}``."""
    if getattr(plan, "kind", None) != "serving":
        raise TypeError(f"plan must be a ServingPlan, got {type(plan).__name__}")
    check_params(plan.config, params)
    if isinstance(prompts, Mapping):
        given = dict(prompts)
    elif isinstance(prompts, Sequence) and not isinstance(prompts, (str, bytes)):
        given = dict(enumerate(prompts))
    else:
        raise TypeError(f"prompts must map request ids to (L,) token ids, got "
                        f"{type(prompts).__name__}")
    out = {}
    for r in plan.requests:
        ids = given.get(r.id)
        if not isinstance(ids, np.ndarray) or ids.shape != (r.prompt_len,) or not \
                np.issubdtype(ids.dtype, np.integer):
            got = (f"{ids.dtype} {ids.shape}" if isinstance(ids, np.ndarray)
                   else type(ids).__name__)
            raise ValueError(f"request {r.id}: prompt must be ({r.prompt_len},) integer ids, "
                             f"got {got}")
        if ids.min() < 0 or ids.max() >= plan.config.vocab:
            raise ValueError(f"request {r.id}: prompt ids must lie in [0, "
                             f"vocab={plan.config.vocab})")
        out[r.id] = ids
    if len(given) != len(plan.requests):
        raise ValueError(f"prompts: {len(given)} given for {len(plan.requests)} requests")
    return out


def assemble(plan: ServingPlan, logits: dict[tuple[int, int], np.ndarray],
             counters: list[RankInferenceCounters]) -> ServingResult:
    """Per-request tokens and logits from the last ranks' ``(request, k)`` logits rows."""
    rows = [np.stack([logits[(r.id, k)] for k in range(r.output_len)]) for r in plan.requests]
    return ServingResult(tuple(x.argmax(-1).astype(np.int64) for x in rows), tuple(rows),
                         tuple(sorted(counters, key=lambda c: c.rank)))


def run_inprocess_serving(plan: ServingPlan, params: dict[str, np.ndarray], prompts: object,
                          backend: str = "numpy") -> ServingResult:
    """Serve on in-process ranks: every replica's pipeline ranks over queues."""
    prompts = check_serving_inputs(plan, params, prompts)
    if backend == "cupy":
        raise ValueError("run: serving runs on the CPU backends (numpy, numba) or mpi")
    xp = compute_module(backend)
    mesh = plan.mesh
    reduce = partial(all_reduce, algorithm=plan.allreduce, backend=backend,
                     tuning=RUNTIME_TUNING)
    shards = inference_shards(plan.config, params, mesh.tp)
    tally = [RankTally() for _ in range(mesh.world)]
    logits: dict[tuple[int, int], np.ndarray] = {}
    counters = []
    for d in range(mesh.dp):
        channels: dict[tuple[int, int], dict[Key, list]] = defaultdict(dict)
        schedule, ranks = plan.schedules[d], []
        for p in range(mesh.pp):
            tallies = [tally[mesh.rank(d, p, t)] for t in range(mesh.tp)]
            tp_reduce = CountedAllReduce(reduce, plan.allreduce, "tp", mesh.tp,
                                         range(mesh.tp), tallies)
            worker = ServingWorker(plan.specs[p], p, mesh.pp, shards, tp_reduce,
                                   plan.traces[d], prompts, plan.policy, xp)
            ranks.append(PipelineInterpreter(p, schedule.actions[p], schedule.placement,
                                             worker, QueueTransport(p, channels), mesh.tp))
        run_replica(d, ranks)
        logits.update(ranks[-1].worker.logits)  # type: ignore[attr-defined]
        for p, it in enumerate(ranks):
            for t in range(mesh.tp):
                r = mesh.rank(d, p, t)
                tally[r].bytes_sent["pp"] = it.bytes_sent[t]
                counters.append(RankInferenceCounters(
                    r, d, p, t, it.worker.kv_cache_bytes[t],  # type: ignore[attr-defined]
                    tally[r].calls, tally[r].bytes_sent))
    return assemble(plan, logits, counters)
