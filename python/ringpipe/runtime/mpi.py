"""Execute a Plan on MPI processes: one process per mesh rank, the same interpreter.

Process w is mesh rank w at ``(d, p, t, c)`` (:class:`~ringpipe.mpi.mesh_comm.MeshComm`).
It holds only its own shard (:func:`~ringpipe.runtime.training.stage_shards` for its
pipeline rank's stages, TP rank t and EP rank) and its CP rank's sequence positions, and
runs the same :class:`~ringpipe.runtime.interpreter.PipelineInterpreter` and
:class:`~ringpipe.runtime.training.TrainingWorker` as the in-process runtime, holding
one rank (payload lists of length 1; the layers' collectives run over the TP, CP and EP
communicators with the plan's step tables,
:class:`~ringpipe.runtime.layer_comm.MpiLayerComm`). What differs is only the transport
and the group collective:

* :class:`MpiTransport` posts a batch of SEND/RECV actions as ``Isend``/``Irecv`` on the
  PP communicator (same d and t; peer = ``placement[stage]``), tagged
  ``2·(stage·m + mb) + dir`` with the *receiving* stage and dir 0 for activations, 1 for
  gradients, and completes them with one ``Waitall``;
* the TP, DP × CP and EDP all-reduces run the step tables over those communicators
  (:class:`~ringpipe.mpi.group.ProcessGroup`), bitwise equal to the in-process executors;
  so do the CP ring's point-to-point steps and the EP all-to-alls.

The DP bucket layout, the gradient accumulation order and the result assembly are those
of the in-process runtime, so loss, outputs, gradients and counters are bitwise equal to
``plan.run(..., backend="numpy")`` wherever the BLAS gives the same bits for the same
call (it does for one thread per process). Rank 0 gathers every rank's
:class:`~ringpipe.runtime.result.RankOutput` and returns the
:class:`~ringpipe.runtime.result.PlanResult`; the others return None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ringpipe.arrays import to_host
from ringpipe.kernels.heap import HeapPolicy, retained_heap
from ringpipe.kernels.threads import ThreadPolicy, check_threads, limit_threads
from ringpipe.model.params import check_params
from ringpipe.mpi.loader import load_mpi
from ringpipe.mpi.mesh_comm import MeshComm
from ringpipe.runtime.device import DeviceSetup, HostStagedTransport, NcclGroup, host_staged_reduce
from ringpipe.runtime.groups import CountedAllReduce, RankTally
from ringpipe.runtime.interpreter import Key, PipelineInterpreter, Recv, Send
from ringpipe.runtime.layer_comm import MpiLayerComm
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


class MpiTransport:
    """Batched point-to-point messages on the PP communicator; see the module docs."""

    def __init__(self, comm: Any, microbatches: int, mpi: Any) -> None:
        self.comm, self.m, self.mpi = comm, microbatches, mpi
        self.tag_ub = comm.Get_attr(mpi.TAG_UB)

    def tag(self, key: Key) -> int:
        """The MPI tag of message ``key``: ``2·(stage·m + mb) + (direction == "B")``."""
        direction, stage, mb = key
        return 2 * (stage * self.m + mb) + (direction == "B")

    def start(self, sends: list[Send], recvs: list[Recv]) -> tuple[list, list]:
        reqs, arrived = [], []
        for r in recvs:
            buf = np.empty(r.shape, dtype=r.dtype)
            reqs.append(self.comm.Irecv(buf, r.peer, self.tag(r.key)))
            arrived.append((r.key, buf))
        for s in sends:
            (payload,) = s.payload
            reqs.append(self.comm.Isend(np.ascontiguousarray(payload), s.peer, self.tag(s.key)))
        return reqs, arrived

    def finish(self, handle: object) -> dict[Key, list]:
        reqs, arrived = handle  # type: ignore[misc]
        self.mpi.Request.Waitall(reqs)
        return {key: [buf] for key, buf in arrived}


def communicator_reduce(group: Any, algorithm: str) -> Any:
    """A one-buffer reduce callable: ``group.all_reduce(buf, algorithm)`` in place."""
    def reduce(buffers: list) -> None:
        (buf,) = buffers
        group.all_reduce(buf, algorithm)
    return reduce


def _agree_on_inputs(plan: Plan, params: dict, batch: object, mc: MeshComm) -> None:
    """Check params and batch on every rank, then agree on the outcome and on the plan and
    batch shapes (one allgather), so a rank whose inputs differ or fail makes every rank
    raise, naming it, instead of leaving the others waiting in a message."""
    problem = None
    try:
        check_params(plan.config, params)
        if not isinstance(batch, tuple) or len(batch) != 2:
            raise TypeError("batch must be a Batch(inputs, targets) or an (inputs, targets) "
                            "tuple")
        shapes = tuple((tuple(np.shape(x)), str(getattr(x, "dtype", type(x).__name__)))
                       for x in batch)
    except (TypeError, ValueError) as exc:
        problem, shapes = f"{type(exc).__name__}: {exc}", None
    everyone = mc.comm.allgather((problem, repr(plan), shapes))
    for rank, (their_problem, their_plan, their_shapes) in enumerate(everyone):
        if their_problem is not None:
            raise ValueError(f"run_plan_mpi: rank {rank}: {their_problem}")
        if (their_plan, their_shapes) != everyone[0][1:]:
            raise ValueError(f"run_plan_mpi: rank {rank}: its plan or batch shapes "
                             f"({their_plan}, {their_shapes}) differ from rank 0's "
                             f"({everyone[0][1]}, {everyone[0][2]})")


def _group_reduces(plan: Plan, mc: MeshComm, device: DeviceSetup | None,
                   collectives: str) -> tuple[Any, Any, Any]:
    """The (TP, DP × CP, EDP) reduction callables: step tables over the communicators, on
    the host or staged through it from the device, or NCCL (the EDP one, for expert
    gradients, only for a MoE model)."""
    moe = plan.config.is_moe  # expert gradients: only then a group for them
    if collectives == "nccl":
        if device is None:
            raise ValueError(f"rank {mc.rank}: collectives 'nccl' need a device (--device "
                             "cupy)")
        return (NcclGroup(mc.tp_comm, device), NcclGroup(mc.dp_cp_comm, device),
                NcclGroup(mc.edp_comm, device) if moe else None)
    if collectives != "steps":
        raise ValueError(f"rank {mc.rank}: collectives must be 'steps' or 'nccl', got "
                         f"{collectives!r}")
    groups = (mc.tp, mc.dp_cp, mc.edp)
    if device is None:
        return tuple(communicator_reduce(g, plan.allreduce) for g in groups)  # type: ignore[return-value]
    up = device.gpu.xp.asarray
    return tuple(host_staged_reduce(g, plan.allreduce, up) for g in groups)  # type: ignore[return-value]


def run_plan_mpi(plan: Plan, params: dict[str, np.ndarray], batch: Batch | tuple,
                 comm: Any = None, *, mesh_comm: MeshComm | None = None,
                 device: DeviceSetup | None = None, collectives: str = "steps",
                 heap: HeapPolicy | None = None,
                 threads: ThreadPolicy | None = None) -> PlanResult | None:
    """Run ``plan`` on the processes of ``comm`` (default: MPI_COMM_WORLD), one per mesh
    rank; see the module docstring. Every process passes the same ``params`` (full
    shapes, like a checkpoint every rank loads) and ``batch``; each keeps only its part.
    Returns the PlanResult on rank 0 and None on the others.

    ``device`` (:mod:`ringpipe.runtime.device`): compute on the GPU the caller selected
    (shards, activations, gradients on the device; PP, CP and EP messages staged through
    the host). ``collectives``: ``"steps"`` (the plan's ring/tree step tables over MPI) or
    ``"nccl"`` (device only). Byte counters follow the plan's step table either way.
    ``heap``: what the step's allocations do (default: freed memory stays in the
    process for the step, :mod:`ringpipe.kernels.heap`). ``threads``: the BLAS and Numba
    threads this rank computes with (default: its node's fair share,
    :meth:`~ringpipe.kernels.threads.ThreadPolicy.node_share`, so ranks started by a
    plain ``mpiexec`` do not oversubscribe the cores).
    """
    if getattr(plan, "kind", None) != "training":
        raise TypeError(f"run_plan_mpi: plan must be a Plan, got {type(plan).__name__}")
    check_threads("run_plan_mpi", threads)
    mpi = load_mpi()
    mc = mesh_comm if mesh_comm is not None else MeshComm(
        plan.mesh, mpi.COMM_WORLD if comm is None else comm)
    try:
        policy = ThreadPolicy.node_share(mc.local_ranks) if threads is None else threads
        with limit_threads(policy), retained_heap(HeapPolicy() if heap is None else heap):
            return _run_plan_mpi(plan, params, batch, mc, device, collectives)
    finally:
        if mesh_comm is None:
            mc.free()


def _run_plan_mpi(plan: Plan, params: dict[str, np.ndarray], batch: Batch | tuple,
                  mc: MeshComm, device: DeviceSetup | None,
                  collectives: str) -> PlanResult | None:
    """:func:`run_plan_mpi` on ``mc`` under its heap and thread policies."""
    mpi = load_mpi()
    d, p, t, c = mc.coord
    up = np.asarray if device is None else device.gpu.xp.asarray
    _agree_on_inputs(plan, params, batch, mc)
    inputs, targets, scale = rank_microbatches(plan, batch, [mc.rank], up)
    transport = MpiTransport(mc.pp_comm, plan.microbatches, mpi)
    need = 2 * len(plan.stages) * plan.microbatches
    if need > transport.tag_ub:
        raise ValueError(f"rank {mc.rank}: {len(plan.stages)} stages × "
                         f"{plan.microbatches} micro-batches need tags up to {need}, "
                         f"above this MPI's TAG_UB {transport.tag_ub}")
    tally = RankTally()
    tp_fn, dense_fn, expert_fn = _group_reduces(plan, mc, device, collectives)
    tp_reduce = CountedAllReduce(tp_fn, plan.allreduce, "tp", mc.tp.size, [mc.tp.rank],
                                 [tally])
    layer_comm = MpiLayerComm(mc, plan.allreduce, tp_reduce, tally, up)
    worker = TrainingWorker(plan, p, [mc.rank],
                            stage_shards(plan, params, p, [mc.rank], up), layer_comm,
                            inputs, targets, scale)
    it = PipelineInterpreter(p, plan.schedule.actions[p], plan.schedule.placement, worker,
                             transport if device is None else
                             HostStagedTransport(transport, up), 1)
    it.run()
    grads: dict[int, dict] = {s: {} for s in worker.grads}
    xp = np if device is None else device.gpu.xp
    for kind, fn, group, counted in (("dense", dense_fn, mc.dp_cp, "dp"),
                                     ("expert", expert_fn, mc.edp, "edp")):
        if not worker.has_bucket(kind):
            continue
        bucket = worker.gradient_bucket(0, xp, kind)
        CountedAllReduce(fn, plan.allreduce, counted, group.size, [group.rank],
                         [tally])([bucket])
        for s, g in worker.unpack_bucket(0, to_host(bucket), kind).items():
            grads[s].update(g)
    tally.bytes_sent["pp"] = it.bytes_sent[0]
    holds = t == 0 and bool(worker.losses)
    mine = RankOutput(RankCounters(mc.rank, d, p, t, it.peak, tally.bytes_sent,
                                   tally.calls, c),
                      grads if holds_grads(plan.mesh, mc.rank) else None,
                      {mb: v[0] for mb, v in worker.losses.items()} if holds else None,
                      {mb: to_host(v[0]) for mb, v in worker.outputs.items()} if holds
                      else None,
                      sum(v[0] for v in worker.aux.values()) if t == 0 else 0.0)
    everyone = mc.comm.gather(mine, root=0)
    return assemble_result(plan, everyone) if mc.rank == 0 else None
