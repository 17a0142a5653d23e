"""Execute a Plan on MPI processes: one process per mesh rank, driven by the schedule IR.

Process w is mesh rank w at ``(d, p, t)`` (:class:`~ringpipe.mpi.mesh_comm.MeshComm`).
It holds only its own shard: the parameters of its pipeline rank's stages
(``plan.schedule.stages_of(p)``), cut to TP shard t, and calls the model's stage
functions in local-rank mode (:meth:`~ringpipe.model.stage.StageSpec.local_view`: lists
of length 1, the layers' all-reduces summing over the TP communicator with the plan's
algorithm). It computes what the in-process runtime (:mod:`ringpipe.runtime.inproc`)
computes for that rank, in the same order:

* replica d takes rows ``[d·m·b, (d+1)·m·b)`` of the global batch of B sequences,
  micro-batch j its rows ``[j·b, (j+1)·b)``, and the last stage scales each micro-batch
  loss by ``b / B``;
* it runs ``plan.schedule.actions[p]`` in order; gradients of a stage accumulate in
  program order (the first W/B result, then ``+=``);
* after the pipeline, each stage's gradients are packed into one bucket (parameter
  order of ``StageSpec.param_shapes``) and all-reduced over the DP communicator.

So loss and gradients are bitwise equal to the in-process run wherever the BLAS gives
the same bits for the same call (it does for one thread per process).

**Messages.** ``SEND_F``/``RECV_F``/``SEND_B``/``RECV_B`` are point-to-point messages on
the PP communicator (same d and t; peer = ``placement[stage]``) tagged
``2·(stage·m + mb) + dir`` with the *receiving* stage and dir 0 for activations, 1 for
gradients. A maximal run of consecutive comm actions is one batch: all its ``Isend`` s
and ``Irecv`` s are posted together and completed with ``Waitall``, which is how the
validator models them (``sends="batched"``, like ``torch.distributed.batch_isend_irecv``),
so every validated schedule runs without deadlock. Stages that are neighbours on one
process hand tensors over locally.

At the end rank 0 gathers losses, outputs, replica 0's gradients and every rank's
counters and returns a :class:`~ringpipe.plan.PlanResult`; the others return None.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ringpipe.kernels.registry import step_table
from ringpipe.model.config import check_batch, check_targets
from ringpipe.model.params import check_params
from ringpipe.model.sharding import gather_grads, split_axis
from ringpipe.model.stage import (
    StageSpec,
    stage_backward,
    stage_backward_input,
    stage_backward_weight,
    stage_forward,
)
from ringpipe.mpi.loader import load_mpi
from ringpipe.mpi.mesh_comm import MeshComm
from ringpipe.plan import Batch, Plan, PlanResult, RankCounters
from ringpipe.schedules import Action, ActionKind

K = ActionKind
_COMM = (K.SEND_F, K.RECV_F, K.SEND_B, K.RECV_B)


def local_shard(plan: Plan, params: dict[str, np.ndarray], p: int,
                t: int) -> dict[int, dict[str, np.ndarray]]:
    """TP shard t of the parameters of pipeline rank p's stages, as fresh copies."""
    out = {}
    for s in plan.schedule.stages_of(p):
        shard = {}
        for name in plan.stages[s].param_shapes():
            axis = split_axis(name)
            value = params[name]
            piece = value if axis is None else np.split(value, plan.mesh.tp, axis=axis)[t]
            shard[name] = np.ascontiguousarray(piece).copy()
        out[s] = shard
    return out


class _Reducer:
    """The ``all_reduce`` callable of one group: sums ``[buf]`` across its processes."""

    def __init__(self, group: Any, algorithm: str, name: str, counters: dict) -> None:
        self.group, self.algorithm, self.name, self.counters = group, algorithm, name, counters

    def __call__(self, buffers: list[np.ndarray]) -> None:
        (buf,) = buffers
        if self.group.size == 1:  # as in-process: a group of one neither reduces nor counts
            return
        self.group.all_reduce(buf, self.algorithm)
        sent = step_table("all_reduce", self.algorithm, self.group.size).bytes_sent(
            buf.size, buf.itemsize)[self.group.rank]
        self.counters["calls"][self.name] += 1
        self.counters["bytes"][self.name] += int(sent)


class _ProcessRank:
    """This process's pipeline rank: program, shards, stores, messages, counters."""

    def __init__(self, plan: Plan, mc: MeshComm, params: dict[str, np.ndarray],
                 inputs: list[np.ndarray], targets: list[np.ndarray], loss_scale: float) -> None:
        mpi = load_mpi()
        self.plan, self.mc, self.mpi = plan, mc, mpi
        d, self.p, t = mc.coord
        self.program = [a for a in plan.schedule.actions[self.p] if a is not None]
        self.shards = local_shard(plan, params, self.p, t)
        self.specs: dict[int, StageSpec] = {s: plan.stages[s].local_view() for s in self.shards}
        self.inputs, self.targets, self.loss_scale = inputs, targets, loss_scale
        self.counters = {"calls": {"tp": 0, "dp": 0}, "bytes": {"tp": 0, "pp": 0, "dp": 0}}
        self.tp_reduce = _Reducer(mc.tp, plan.allreduce, "tp", self.counters)
        self.inbox: dict[tuple[str, int, int], list[np.ndarray]] = {}
        self.outbox: dict[tuple[str, int, int], list[np.ndarray]] = {}
        self.caches: dict[tuple[int, int], Any] = {}
        self.wcaches: dict[tuple[int, int], Any] = {}
        self.grads: dict[int, dict[str, np.ndarray]] = {}
        self.losses: dict[int, float] = {}
        self.outputs: dict[int, np.ndarray] = {}
        self.held = self.peak = 0
        m, stages = plan.microbatches, len(plan.stages)
        tag_ub = mc.pp_comm.Get_attr(mpi.TAG_UB)
        if 2 * stages * m > tag_ub:
            raise ValueError(f"{stages} stages × {m} micro-batches need tags up to "
                             f"{2 * stages * m}, above this MPI's TAG_UB {tag_ub}")

    # -- messages ------------------------------------------------------------------
    def _tag(self, kind: str, stage: int, mb: int) -> int:
        return 2 * (stage * self.plan.microbatches + mb) + (kind == "B")

    def _run_batch(self, batch: list[Action]) -> None:
        """Post a run of consecutive SEND/RECV actions together, then wait for all."""
        comm, placement, cfg = self.mc.pp_comm, self.plan.schedule.placement, self.plan.config
        reqs, arrived = [], []
        for a in batch:
            s, mb = a.stage, a.microbatch
            if a.kind in (K.RECV_F, K.RECV_B):
                kind, src = ("F", s - 1) if a.kind is K.RECV_F else ("B", s + 1)
                shape = (self.inputs[0].shape[0], cfg.seq, cfg.hidden)
                buf = np.empty(shape, dtype=cfg.np_dtype)
                reqs.append(comm.Irecv(buf, placement[src], self._tag(kind, s, mb)))
                arrived.append(((kind, s, mb), buf))
            else:
                kind, dst = ("F", s + 1) if a.kind is K.SEND_F else ("B", s - 1)
                (payload,) = self.outbox.pop((kind, s, mb))
                if placement[dst] == self.p:  # same process: no message
                    self.inbox[(kind, dst, mb)] = [payload]
                    continue
                payload = np.ascontiguousarray(payload)
                reqs.append(comm.Isend(payload, placement[dst], self._tag(kind, dst, mb)))
                self.counters["bytes"]["pp"] += payload.nbytes
        self.mpi.Request.Waitall(reqs)
        for key, buf in arrived:
            self.inbox[key] = [buf]

    def _hand_on(self, dst_stage: int, out_tag: tuple, in_tag: tuple, payload: list) -> None:
        if self.plan.schedule.placement[dst_stage] == self.p:
            self.inbox[in_tag] = payload
        else:
            self.outbox[out_tag] = payload  # the schedule's SEND action ships it

    # -- compute -------------------------------------------------------------------
    def _compute(self, a: Action) -> None:
        s, mb, kind = a.stage, a.microbatch, a.kind
        spec, last = self.specs[s], s == len(self.plan.stages) - 1
        if kind is K.FORWARD:
            xs = [self.inputs[mb]] if s == 0 else self.inbox.pop(("F", s, mb))
            self.held += 1
            self.peak = max(self.peak, self.held)
            out, cache = stage_forward(spec, [self.shards[s]], xs, self.tp_reduce,
                                       self.targets[mb] if last else None, self.loss_scale)
            self.caches[(s, mb)] = cache
            if last:
                self.losses[mb], self.outputs[mb] = out, cache.output
            else:
                self._hand_on(s + 1, ("F", s, mb), ("F", s + 1, mb), out)
        elif kind in (K.FULL_BACKWARD, K.BACKWARD_INPUT):
            dys = None if last else self.inbox.pop(("B", s, mb))
            cache = self.caches.pop((s, mb))
            if kind is K.FULL_BACKWARD:
                dxs, grads = stage_backward(spec, cache, dys, self.tp_reduce)
                self._accumulate(s, grads[0])
            else:
                dxs, self.wcaches[(s, mb)] = stage_backward_input(spec, cache, dys,
                                                                  self.tp_reduce)
            self.held -= 1
            if s > 0:
                self._hand_on(s - 1, ("B", s, mb), ("B", s - 1, mb), dxs)
        elif kind is K.BACKWARD_WEIGHT:
            self._accumulate(s, stage_backward_weight(spec, self.wcaches.pop((s, mb)))[0])
        else:  # pragma: no cover - the IR has no other kinds
            raise ValueError(f"rank {self.mc.rank}: cannot execute {a}")

    def _accumulate(self, s: int, grads: dict[str, np.ndarray]) -> None:
        if s not in self.grads:
            self.grads[s] = grads
            return
        for name, value in grads.items():
            self.grads[s][name] += value

    def run(self) -> None:
        """Execute the program: compute actions one by one, comm actions in batches."""
        i, program = 0, self.program
        while i < len(program):
            if program[i].kind in _COMM:
                j = i
                while j < len(program) and program[j].kind in _COMM:
                    j += 1
                self._run_batch(program[i:j])
                i = j
            else:
                self._compute(program[i])
                i += 1

    def reduce_data_parallel(self) -> None:
        """All-reduce each stage's gradient bucket over the DP group (as DDP does)."""
        dp_reduce = _Reducer(self.mc.dp, self.plan.allreduce, "dp", self.counters)
        for s in self.plan.schedule.stages_of(self.p):
            names = list(self.grads[s])
            bucket = np.concatenate([self.grads[s][n].reshape(-1) for n in names])
            dp_reduce([bucket])
            sizes = np.cumsum([0] + [self.grads[s][n].size for n in names])
            self.grads[s] = {n: bucket[sizes[k]:sizes[k + 1]].reshape(self.grads[s][n].shape)
                             for k, n in enumerate(names)}


def _micro_batches(plan: Plan, batch: object, d: int) -> tuple[list, list, float]:
    if not isinstance(batch, tuple) or len(batch) != 2:
        raise TypeError("batch must be a Batch(inputs, targets) or an (inputs, targets) tuple")
    inputs = check_batch(plan.config, batch[0], "batch.inputs")
    targets = check_targets(plan.config, batch[1], inputs.shape[0])
    b, m = plan.check_batch_size(inputs.shape[0]), plan.microbatches
    rows = slice(d * b * m, (d + 1) * b * m)
    mb_in = [inputs[rows][j * b:(j + 1) * b] for j in range(m)]
    mb_tg = [targets[rows][j * b:(j + 1) * b] for j in range(m)]
    return mb_in, mb_tg, b / inputs.shape[0]


def run_plan_mpi(plan: Plan, params: dict[str, np.ndarray], batch: Batch | tuple,
                 comm: Any = None, *, mesh_comm: MeshComm | None = None) -> PlanResult | None:
    """Run ``plan`` on the processes of ``comm`` (default: MPI_COMM_WORLD), one per mesh
    rank; see the module docstring. Every process passes the same ``params`` (full
    shapes, like a checkpoint every rank loads) and ``batch``; each keeps only its part.
    Returns the PlanResult on rank 0 and None on the others.
    """
    if not isinstance(plan, Plan):
        raise TypeError(f"run_plan_mpi: plan must be a Plan, got {type(plan).__name__}")
    check_params(plan.config, params)
    mc = mesh_comm if mesh_comm is not None else MeshComm(
        plan.mesh, load_mpi().COMM_WORLD if comm is None else comm)
    try:
        inputs, targets, scale = _micro_batches(plan, batch, mc.coord.dp)
        me = _ProcessRank(plan, mc, params, inputs, targets, scale)
        me.run()
        me.reduce_data_parallel()
        return _gather(plan, mc, me)
    finally:
        if mesh_comm is None:
            mc.free()


def _gather(plan: Plan, mc: MeshComm, me: _ProcessRank) -> PlanResult | None:
    """Rank 0 collects loss, outputs, replica 0's gradients and every counter."""
    d, p, t = mc.coord
    c = me.counters
    mine = {"counters": RankCounters(mc.rank, d, p, t, me.peak, dict(c["bytes"]),
                                     dict(c["calls"])),
            "grads": me.grads if d == 0 else None,
            "losses": me.losses if t == 0 and me.losses else None,
            "outputs": me.outputs if t == 0 and me.losses else None}
    everyone = mc.comm.gather(mine, root=0)
    if mc.rank != 0:
        return None
    mesh = plan.mesh
    full: dict[str, np.ndarray] = {}
    for pr in range(mesh.pp):
        for s in plan.schedule.stages_of(pr):
            per_tp = [everyone[mesh.rank(0, pr, tr)]["grads"][s] for tr in range(mesh.tp)]
            full.update(gather_grads(plan.config, per_tp, mesh.tp))
    last = plan.schedule.placement[len(plan.stages) - 1]
    loss, outputs = 0.0, []
    for dr in range(mesh.dp):
        held = everyone[mesh.rank(dr, last, 0)]
        for mb in range(plan.microbatches):
            loss += held["losses"][mb]
            outputs.append(held["outputs"][mb])
    counters = tuple(everyone[r]["counters"] for r in range(mesh.world))
    return PlanResult(float(loss), np.concatenate(outputs), full, counters)
