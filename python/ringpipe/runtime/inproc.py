"""Execute a Plan on in-process ranks, driven purely by the schedule IR.

Every pipeline rank of every data-parallel replica is a :class:`_PipelineRank` with its
own program (its action list, SEND/RECV included), its own parameter shards (only its
stages' layers, only its TP shard) and its own activation store. The TP ranks of a
pipeline position run together, since the layers' all-reduces need all of them
(:mod:`ringpipe.model.stage` takes per-tp-rank lists).

Messages are explicit: ``SEND_F`` copies a stage's output into the channel to the rank
holding the next stage, tagged ``(F, stage, micro-batch)`` like an MPI tag, and
``RECV_F`` takes it out; gradients travel the same way with ``SEND_B``/``RECV_B``.
Neighbouring stages on one rank (interleaved with p = 1, the turn of a V) hand over
locally. A round-robin loop runs each rank until its next action waits on a message;
no progress with work left is a deadlock, reported with the rank's position. There is
no schedule-specific code here: any schedule the validator accepts runs.

After the pipeline drains, each (pp, tp) position's gradients are packed into one
bucket per replica and all-reduced over the DP group, as DDP does.

**Devices.** With ``backend="cupy"`` the TP shards are uploaded once (shared by the DP
replicas, which run one after another), every micro-batch is uploaded, and from there
activations, messages, gradients and all-reduces (the CUDA step-table kernel) stay in
GPU memory; the model maths runs on CuPy through :mod:`ringpipe.arrays`. Only the
reduced gradient buckets, the head outputs and the losses come back to the host, so
:class:`~ringpipe.plan.PlanResult` always holds NumPy arrays. Under Numba's CUDA
simulator the "device" is the host (:mod:`ringpipe.kernels.cuda_backend`) and only the
all-reduces change, to the simulated CUDA kernel.

The layers' all-reduces run between BLAS matmuls, whose worker threads keep spinning
for a while after each call; waking Numba's thread pool then oversubscribes the cores
(measured here: 10 ms instead of 0.3 ms for a 2 × 512 KiB all-reduce). The runtime
therefore runs the Numba kernel single-threaded (:data:`RUNTIME_TUNING`).
"""

from __future__ import annotations

from collections import defaultdict
from types import ModuleType

import numpy as np

from ringpipe.arrays import array_module, to_host
from ringpipe.collectives import all_reduce
from ringpipe.kernels.cuda_backend import gpu_arrays
from ringpipe.kernels.numba_exec import KernelTuning
from ringpipe.kernels.registry import step_table
from ringpipe.model.config import check_batch, check_targets
from ringpipe.model.params import check_params
from ringpipe.model.sharding import gather_grads, shard_params
from ringpipe.model.stage import (
    StageSpec,
    stage_backward,
    stage_backward_input,
    stage_backward_weight,
    stage_forward,
)
from ringpipe.plan import Batch, Plan, PlanResult, RankCounters
from ringpipe.schedules import Action, ActionKind

K = ActionKind

#: Kernel tuning for all-reduces issued between matmuls: never wake the thread pool.
RUNTIME_TUNING = KernelTuning(parallel_min_bytes=1 << 62)


class _Group:
    """Counts calls and bytes of every all-reduce one group of ranks makes."""

    def __init__(self, plan: Plan, backend: str, name: str, ranks: tuple[int, ...],
                 bytes_sent: dict, calls: dict) -> None:
        self.plan, self.backend, self.name, self.ranks = plan, backend, name, ranks
        self.bytes_sent, self.calls = bytes_sent, calls

    def __call__(self, buffers: list[np.ndarray]) -> None:
        if len(buffers) == 1:  # a group of one rank: nothing to reduce, nothing to count
            return
        all_reduce(buffers, self.plan.allreduce, self.backend, tuning=RUNTIME_TUNING)
        table = step_table("all_reduce", self.plan.allreduce, len(buffers))
        sent = table.bytes_sent(buffers[0].size, buffers[0].itemsize)
        for i, rank in enumerate(self.ranks):
            self.calls[rank][self.name] += 1
            self.bytes_sent[rank][self.name] += int(sent[i])


class _PipelineRank:
    """One pipeline rank of one replica: its program, shards, stores and counters."""

    def __init__(self, plan: Plan, d: int, p: int, shards: list[dict[str, np.ndarray]],
                 tp_group: _Group) -> None:
        self.plan, self.d, self.p = plan, d, p
        self.program = [a for a in plan.schedule.actions[p] if a is not None]
        self.pc = 0
        self.shards = {s: [plan.stages[s].select(sh) for sh in shards]
                       for s in plan.schedule.stages_of(p)}
        self.tp_group = tp_group
        self.inbox: dict[tuple[str, int, int], list[np.ndarray]] = {}
        self.outbox: dict[tuple[str, int, int], list[np.ndarray]] = {}
        self.caches: dict[tuple[int, int], object] = {}
        self.wcaches: dict[tuple[int, int], object] = {}
        self.grads: dict[int, list[dict[str, np.ndarray]]] = {}
        self.held = 0
        self.peak = 0


class _Replica:
    """The pipeline ranks of one DP replica and the channels between them."""

    def __init__(self, plan: Plan, d: int, ranks: list[_PipelineRank],
                 inputs: list[np.ndarray], targets: list[np.ndarray], loss_scale: float,
                 pp_bytes: dict, rank_of: dict) -> None:
        self.plan, self.d, self.ranks = plan, d, ranks
        self.inputs, self.targets, self.loss_scale = inputs, targets, loss_scale
        self.channels: dict[tuple[int, int], dict] = defaultdict(dict)
        self.losses: dict[int, float] = {}
        self.outputs: dict[int, np.ndarray] = {}
        self.pp_bytes, self.rank_of = pp_bytes, rank_of
        self.placement = plan.schedule.placement

    # -- messages ------------------------------------------------------------------
    def _send(self, r: _PipelineRank, dst_stage: int, tag: tuple, payload: list) -> None:
        dst = self.placement[dst_stage]
        if dst == r.p:  # same rank: local hand-over, no message
            r.inbox[tag] = payload
            return
        copies = [x.copy() for x in payload]  # the wire: no shared memory
        self.channels[(r.p, dst)][tag] = copies
        for t, x in enumerate(copies):
            self.pp_bytes[self.rank_of[(self.d, r.p, t)]] += x.nbytes

    def _ready(self, r: _PipelineRank, a: Action) -> bool:
        if a.kind is K.RECV_F:
            return ("F", a.stage, a.microbatch) in self.channels[(self.placement[a.stage - 1],
                                                                   r.p)]
        if a.kind is K.RECV_B:
            return ("B", a.stage, a.microbatch) in self.channels[(self.placement[a.stage + 1],
                                                                   r.p)]
        return True

    # -- one action ------------------------------------------------------------------
    def execute(self, r: _PipelineRank, a: Action) -> None:
        s, mb, kind = a.stage, a.microbatch, a.kind
        spec: StageSpec = self.plan.stages[s]
        last = s == len(self.plan.stages) - 1
        if kind is K.RECV_F:
            src = self.placement[s - 1]
            r.inbox[("F", s, mb)] = self.channels[(src, r.p)].pop(("F", s, mb))
        elif kind is K.RECV_B:
            src = self.placement[s + 1]
            r.inbox[("B", s, mb)] = self.channels[(src, r.p)].pop(("B", s, mb))
        elif kind is K.SEND_F:
            self._send(r, s + 1, ("F", s + 1, mb), r.outbox.pop(("F", s, mb)))
        elif kind is K.SEND_B:
            self._send(r, s - 1, ("B", s - 1, mb), r.outbox.pop(("B", s, mb)))
        elif kind is K.FORWARD:
            xs = ([self.inputs[mb]] * spec.tp if s == 0 else r.inbox.pop(("F", s, mb)))
            r.held += 1
            r.peak = max(r.peak, r.held)
            out, cache = stage_forward(spec, r.shards[s], xs, r.tp_group,
                                       self.targets[mb] if last else None, self.loss_scale)
            r.caches[(s, mb)] = cache
            if last:
                self.losses[mb] = out
                self.outputs[mb] = cache.output
            else:
                self._hand_on(r, s + 1, ("F", s, mb), ("F", s + 1, mb), out)
        elif kind in (K.FULL_BACKWARD, K.BACKWARD_INPUT):
            dys = None if last else r.inbox.pop(("B", s, mb))
            cache = r.caches.pop((s, mb))
            if kind is K.FULL_BACKWARD:
                dxs, grads = stage_backward(spec, cache, dys, r.tp_group)
                self._accumulate(r, s, grads)
            else:
                dxs, r.wcaches[(s, mb)] = stage_backward_input(spec, cache, dys, r.tp_group)
            r.held -= 1
            if s > 0:
                self._hand_on(r, s - 1, ("B", s, mb), ("B", s - 1, mb), dxs)
        elif kind is K.BACKWARD_WEIGHT:
            self._accumulate(r, s, stage_backward_weight(spec, r.wcaches.pop((s, mb))))
        else:  # pragma: no cover - the IR has no other kinds
            raise ValueError(f"rank {r.p}: cannot execute {a}")

    def _hand_on(self, r: _PipelineRank, dst_stage: int, out_tag: tuple, in_tag: tuple,
                 payload: list) -> None:
        if self.placement[dst_stage] == r.p:
            r.inbox[in_tag] = payload
        else:
            r.outbox[out_tag] = payload  # the schedule's SEND action ships it

    @staticmethod
    def _accumulate(r: _PipelineRank, s: int, grads: list[dict[str, np.ndarray]]) -> None:
        if s not in r.grads:
            r.grads[s] = grads
            return
        for acc, g in zip(r.grads[s], grads, strict=True):
            for name, value in g.items():
                acc[name] += value

    # -- the loop ------------------------------------------------------------------
    def run(self) -> None:
        """Round-robin over ranks until every program has finished."""
        while True:
            progressed = False
            for r in self.ranks:
                while r.pc < len(r.program) and self._ready(r, r.program[r.pc]):
                    self.execute(r, r.program[r.pc])
                    r.pc += 1
                    progressed = True
            if all(r.pc == len(r.program) for r in self.ranks):
                return
            if not progressed:
                stuck = ", ".join(f"rank {r.p} at step {r.pc} ({r.program[r.pc]})"
                                  for r in self.ranks if r.pc < len(r.program))
                raise RuntimeError(f"replica {self.d}: deadlock: {stuck}")


def _split_batch(plan: Plan, batch: object) -> tuple[np.ndarray, np.ndarray, int]:
    if not isinstance(batch, tuple) or len(batch) != 2:
        raise TypeError("batch must be a Batch(inputs, targets) or an (inputs, targets) tuple")
    inputs = check_batch(plan.config, batch[0], "batch.inputs")
    targets = check_targets(plan.config, batch[1], inputs.shape[0])
    return inputs, targets, plan.check_batch_size(inputs.shape[0])


def compute_module(backend: str) -> ModuleType:
    """The array module a plan computes with on ``backend``: NumPy, or for "cupy" the
    GPU backend's (CuPy; NumPy under the CUDA simulator). ImportError if it cannot run."""
    return gpu_arrays("Plan.run").xp if backend == "cupy" else np


def run_inprocess(plan: Plan, params: dict[str, np.ndarray], batch: Batch | tuple,
                  backend: str) -> PlanResult:
    """Run ``plan`` forward and backward; see the module docstring."""
    check_params(plan.config, params)
    inputs, targets, b = _split_batch(plan, batch)
    xp = compute_module(backend)
    mesh = plan.mesh
    global_batch = inputs.shape[0]
    shards = [{name: xp.asarray(value) for name, value in shard.items()}  # whole model
              for shard in shard_params(plan.config, params, mesh.tp)]  # per tp rank
    rank_of = {tuple(mesh.coord(r)): r for r in range(mesh.world)}
    bytes_sent = {r: {"tp": 0, "pp": 0, "dp": 0} for r in range(mesh.world)}
    calls = {r: {"tp": 0, "dp": 0} for r in range(mesh.world)}
    pp_bytes = {r: 0 for r in range(mesh.world)}
    replicas = []
    for d in range(mesh.dp):
        ranks = []
        for p in range(mesh.pp):
            group = tuple(rank_of[(d, p, t)] for t in range(mesh.tp))
            ranks.append(_PipelineRank(plan, d, p, shards,
                                       _Group(plan, backend, "tp", group, bytes_sent, calls)))
        rows = slice(d * b * plan.microbatches, (d + 1) * b * plan.microbatches)
        mb_in = [xp.asarray(inputs[rows][j * b:(j + 1) * b]) for j in range(plan.microbatches)]
        mb_tg = [xp.asarray(targets[rows][j * b:(j + 1) * b])
                 for j in range(plan.microbatches)]
        replica = _Replica(plan, d, ranks, mb_in, mb_tg, b / global_batch, pp_bytes, rank_of)
        replica.run()
        replicas.append(replica)
    for r, n in pp_bytes.items():
        bytes_sent[r]["pp"] = n
    grads = _reduce_data_parallel(plan, replicas, backend, rank_of, bytes_sent, calls)
    loss = 0.0
    outputs = []
    for rep in replicas:
        for mb in range(plan.microbatches):
            loss += rep.losses[mb]
            outputs.append(to_host(rep.outputs[mb]))
    counters = tuple(
        RankCounters(r, *mesh.coord(r), replicas[mesh.coord(r).dp].ranks[mesh.coord(r).pp].peak,
                     bytes_sent[r], calls[r])
        for r in range(mesh.world))
    return PlanResult(float(loss), np.concatenate(outputs), grads, counters)


def _reduce_data_parallel(plan: Plan, replicas: list[_Replica], backend: str, rank_of: dict,
                          bytes_sent: dict, calls: dict) -> dict[str, np.ndarray]:
    """DP all-reduce of one gradient bucket per (pp, tp) position (all of that pipeline
    rank's stages together, as DDP buckets a module); returns full-shape gradients."""
    mesh = plan.mesh
    full: dict[str, np.ndarray] = {}
    for p in range(mesh.pp):
        stages = plan.schedule.stages_of(p)
        reduced = []  # per tp rank: {stage: {name: grad}} after the DP reduction
        for t in range(mesh.tp):
            keys = [(s, n) for s in stages for n in replicas[0].ranks[p].grads[s][t]]
            first = replicas[0].ranks[p].grads[stages[0]][t]
            xp = array_module(first[next(iter(first))])
            buckets = [xp.concatenate([rep.ranks[p].grads[s][t][n].reshape(-1)
                                       for s, n in keys]) for rep in replicas]
            if mesh.dp > 1:
                group = tuple(rank_of[(d, p, t)] for d in range(mesh.dp))
                _Group(plan, backend, "dp", group, bytes_sent, calls)(buckets)
            shapes = [replicas[0].ranks[p].grads[s][t][n].shape for s, n in keys]
            ends = np.cumsum([0] + [int(np.prod(sh)) for sh in shapes])
            per_stage: dict[int, dict[str, np.ndarray]] = {s: {} for s in stages}
            reduced_bucket = to_host(buckets[0])  # one device-to-host copy per bucket
            for i, (s, n) in enumerate(keys):
                per_stage[s][n] = reduced_bucket[ends[i]:ends[i + 1]].reshape(shapes[i])
            reduced.append(per_stage)
        for s in stages:
            full.update(gather_grads(plan.config, [reduced[t][s] for t in range(mesh.tp)],
                                     mesh.tp))
    return full
