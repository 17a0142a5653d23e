"""Greedy generation on a TP × PP (× DP) mesh, through the one pipeline interpreter.

An :class:`~ringpipe.plan.inference.InferencePlan` lowers generation to the forward-only
decode schedule of :mod:`ringpipe.schedules.generators.decode`: K token steps unrolled into K·p
virtual stages, step 0 the prompt's prefill, G groups of sequences in flight. Each pipeline rank's
action list runs on the same :class:`~ringpipe.runtime.interpreter.PipelineInterpreter`
as training, with an :class:`InferenceWorker` for compute: its ``forward`` runs the
rank's layers (:func:`~ringpipe.model.inference_stage.stage_step`) on one group,
extending that group's KV-cache shard, and on the last rank picks the greedy tokens,
which the interpreter hands to stage 0 of the next step like any activation (the
schedule's SEND_F/RECV_F between the last and first ranks). Nothing here, nor in the
interpreter, depends on the schedule beyond that.

DP replicas take contiguous, near-equal slices of the B prompts
(:func:`ringpipe.chunk_bounds`), and each replica's groups contiguous slices of its own.
:func:`run_inprocess_inference` runs every rank in this process over the interpreter's
in-memory queues; :mod:`ringpipe.runtime.inference_mpi` runs one process per rank over
MPI with the same worker, so both give the same bits.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from ringpipe.arrays import to_host
from ringpipe.collectives.api import all_reduce
from ringpipe.kernels.threads import ThreadPolicy, limit_threads
from ringpipe.model.generate import check_prompts
from ringpipe.model.inference_stage import inference_shards, stage_step
from ringpipe.model.params import check_params
from ringpipe.runtime.groups import CountedAllReduce, RankTally
from ringpipe.runtime.inproc import RUNTIME_TUNING, QueueTransport, compute_module, run_replica
from ringpipe.runtime.interpreter import Key, PipelineInterpreter

if TYPE_CHECKING:
    from ringpipe.plan.inference import InferencePlan

__all__ = ["InferenceResult", "InferenceWorker", "RankInferenceCounters",
           "run_inprocess_inference"]


@dataclass(frozen=True)
class RankInferenceCounters:
    """One mesh rank's KV-cache bytes, all-reduce calls and bytes sent per group."""

    rank: int
    dp: int
    pp: int
    tp: int
    kv_cache_bytes: int
    allreduce_calls: dict[str, int]
    bytes_sent: dict[str, int]


@dataclass(frozen=True)
class InferenceResult:
    """``tokens`` ``(B, K)`` and ``logits`` ``(B, K, vocab)`` in prompt order, and counters
    per mesh rank."""

    tokens: np.ndarray
    logits: np.ndarray
    counters: tuple[RankInferenceCounters, ...]


class InferenceWorker:
    """Pipeline rank p's forward passes with KV caches; see the module docstring.

    ``shards``: one inference shard per TP rank held here; ``prompts``: this replica's
    prompt groups, on the compute device.
    """

    def __init__(self, plan: InferencePlan, p: int, shards: list[dict], reduce: Any,
                 prompts: list, local: bool, xp: Any = np) -> None:
        spec = plan.specs[p]
        self.plan, self.p, self.reduce, self.prompts, self.xp = plan, p, reduce, prompts, xp
        self.spec = spec.local_view() if local else spec
        self.shards = [{n: s[n] for n in self.spec.param_shapes()} for s in shards]
        self.caches: dict[int, list] = {}
        self.logits: dict[tuple[int, int], np.ndarray] = {}

    def forward(self, stage: int, mb: int, inputs: list | None) -> list:
        step, r = divmod(stage, self.plan.mesh.pp)
        if r != self.p:
            raise ValueError(f"pipeline rank {self.p}: stage {stage} belongs to rank {r}")
        spec, here = self.spec, self.spec.ranks_here
        if spec.is_first:
            ids = self.prompts[mb] if step == 0 else inputs[0]  # type: ignore[index]
            xs = [ids] * here
        else:
            xs = inputs  # type: ignore[assignment]
        if mb not in self.caches:
            self.caches[mb] = spec.allocate(self.prompts[mb].shape[0], self.plan.capacity,
                                            self.xp)
        out = stage_step(spec, self.shards, xs, self.caches[mb], self.reduce)
        if not spec.is_last:
            return out
        self.logits[(mb, step)] = to_host(out[0])
        tokens = self.xp.argmax(out[0], axis=-1).astype(np.int64).reshape(-1, 1)
        return [tokens.copy() for _ in range(here)]

    def message_shape(self, key: Key) -> tuple[tuple[int, ...], Any]:
        _, stage, mb = key
        step, r = divmod(stage, self.plan.mesh.pp)
        b = self.prompts[mb].shape[0]
        if r == 0:
            return (b, 1), np.dtype(np.int64)
        n = self.plan.prompt_len if step == 0 else 1
        return (b, n, self.plan.config.hidden), self.plan.config.np_dtype

    def _forward_only(self, *_: object) -> None:
        raise ValueError(f"pipeline rank {self.p}: inference schedules are forward-only")

    backward = backward_input = backward_weight = _forward_only

    @property
    def kv_cache_bytes(self) -> list[int]:
        """Per TP rank held here, the bytes of every group's KV cache."""
        return [sum(c[t].nbytes for c in self.caches.values())
                for t in range(self.spec.ranks_here)]


def replica_prompts(plan: InferencePlan, prompts: np.ndarray, d: int,
                    upload: Any = np.asarray) -> list:
    """Replica d's prompt groups, uploaded to the compute device."""
    start, stop = plan.replica_rows(d)
    mine = prompts[start:stop]
    return [upload(np.ascontiguousarray(mine[a:b])) for a, b in plan.group_rows(len(mine))]


def check_inputs(plan: InferencePlan, params: dict, prompts: object) -> np.ndarray:
    """Check parameters and prompts (before any rank starts)."""
    if getattr(plan, "kind", None) != "inference":
        raise TypeError(f"plan must be an InferencePlan, got {type(plan).__name__}")
    check_params(plan.config, params)
    prompts = check_prompts(plan.config, prompts)
    if not isinstance(prompts, np.ndarray):
        raise TypeError("prompts must be a numpy array (the runtime uploads each group)")
    if prompts.shape != (plan.batch, plan.prompt_len):
        raise ValueError(f"prompts have shape {prompts.shape}, the plan generates for "
                         f"(batch, prompt_len) = {(plan.batch, plan.prompt_len)}")
    return prompts


def assemble(plan: InferencePlan, logits: dict[int, dict],
             counters: list[RankInferenceCounters]) -> InferenceResult:
    """Tokens and logits in prompt order from each replica's last-rank worker logits."""
    k = plan.new_tokens
    out = np.empty((plan.batch, k, plan.config.vocab), dtype=plan.config.np_dtype)
    for d in range(plan.mesh.dp):
        start, stop = plan.replica_rows(d)
        for g, (a, b) in enumerate(plan.group_rows(stop - start)):
            for step in range(k):
                out[start + a:start + b, step] = logits[d][(g, step)]
    return InferenceResult(out.argmax(-1).astype(np.int64), out, tuple(counters))


def run_inprocess_inference(plan: InferencePlan, params: dict[str, np.ndarray],
                            prompts: np.ndarray, backend: str = "numpy",
                            threads: ThreadPolicy | None = None) -> InferenceResult:
    """Generate on in-process ranks: every replica's pipeline ranks over queues, under
    ``threads`` (default: the mesh's ranks' fair share, as :mod:`.inproc` does)."""
    policy = ThreadPolicy.fair_share(plan.mesh.world) if threads is None else threads
    with limit_threads(policy):
        return _generate(plan, params, prompts, backend)


def _generate(plan: InferencePlan, params: dict[str, np.ndarray], prompts: np.ndarray,
              backend: str) -> InferenceResult:
    prompts = check_inputs(plan, params, prompts)
    xp = compute_module(backend)
    mesh = plan.mesh
    reduce = partial(all_reduce, algorithm=plan.allreduce, backend=backend,
                     tuning=RUNTIME_TUNING)
    shards = [{n: xp.asarray(v) for n, v in s.items()}
              for s in inference_shards(plan.config, params, mesh.tp)]
    tally = [RankTally() for _ in range(mesh.world)]
    logits: dict[int, dict] = {}
    counters = []
    for d in range(mesh.dp):
        groups = replica_prompts(plan, prompts, d, xp.asarray)
        channels: dict[tuple[int, int], dict[Key, list]] = defaultdict(dict)
        ranks = []
        for p in range(mesh.pp):
            tallies = [tally[mesh.rank(d, p, t)] for t in range(mesh.tp)]
            tp_reduce = CountedAllReduce(reduce, plan.allreduce, "tp", mesh.tp,
                                         range(mesh.tp), tallies)
            worker = InferenceWorker(plan, p, shards, tp_reduce, groups, False, xp)
            ranks.append(PipelineInterpreter(p, plan.schedule.actions[p],
                                             plan.schedule.placement, worker,
                                             QueueTransport(p, channels), mesh.tp))
        run_replica(d, ranks)
        logits[d] = ranks[-1].worker.logits  # type: ignore[attr-defined]
        for p, it in enumerate(ranks):
            for t in range(mesh.tp):
                r = mesh.rank(d, p, t)
                tally[r].bytes_sent["pp"] = it.bytes_sent[t]
                counters.append(RankInferenceCounters(
                    r, d, p, t, it.worker.kv_cache_bytes[t],  # type: ignore[attr-defined]
                    tally[r].calls, tally[r].bytes_sent))
    counters.sort(key=lambda c: c.rank)
    return assemble(plan, logits, counters)

