"""Execute a Plan on MPI processes: one process per mesh rank, the same interpreter.

Process w is mesh rank w at ``(d, p, t)`` (:class:`~ringpipe.mpi.mesh_comm.MeshComm`).
It holds only its own shard (:func:`~ringpipe.runtime.training.stage_shards` for its
pipeline rank's stages and TP rank t) and runs the same
:class:`~ringpipe.runtime.interpreter.PipelineInterpreter` and
:class:`~ringpipe.runtime.training.TrainingWorker` as the in-process runtime, in
local-rank mode (payload lists of length 1; the layers' all-reduces sum over the TP
communicator with the plan's algorithm). What differs is only the transport and the
group collective:

* :class:`MpiTransport` posts a batch of SEND/RECV actions as ``Isend``/``Irecv`` on the
  PP communicator (same d and t; peer = ``placement[stage]``), tagged
  ``2·(stage·m + mb) + dir`` with the *receiving* stage and dir 0 for activations, 1 for
  gradients, and completes them with one ``Waitall``;
* the TP and DP all-reduces run the step tables over the TP and DP communicators
  (:class:`~ringpipe.mpi.group.ProcessGroup`), bitwise equal to the in-process executors.

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
from ringpipe.model.params import check_params
from ringpipe.mpi.loader import load_mpi
from ringpipe.mpi.mesh_comm import MeshComm
from ringpipe.runtime.device import DeviceSetup, HostStagedTransport, NcclGroup, host_staged_reduce
from ringpipe.runtime.groups import CountedAllReduce, RankTally
from ringpipe.runtime.interpreter import Key, PipelineInterpreter, Recv, Send
from ringpipe.runtime.result import Batch, PlanResult, RankCounters, RankOutput, assemble_result
from ringpipe.runtime.training import TrainingWorker, microbatches, stage_shards

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
                   collectives: str) -> tuple[Any, Any]:
    """The (TP, DP) reduction callables: step tables over the communicators, on the host
    or staged through it from the device, or NCCL."""
    if collectives == "nccl":
        if device is None:
            raise ValueError(f"rank {mc.rank}: collectives 'nccl' need a device (--device "
                             "cupy)")
        return NcclGroup(mc.tp_comm, device), NcclGroup(mc.dp_comm, device)
    if collectives != "steps":
        raise ValueError(f"rank {mc.rank}: collectives must be 'steps' or 'nccl', got "
                         f"{collectives!r}")
    if device is None:
        return (communicator_reduce(mc.tp, plan.allreduce),
                communicator_reduce(mc.dp, plan.allreduce))
    up = device.gpu.xp.asarray
    return (host_staged_reduce(mc.tp, plan.allreduce, up),
            host_staged_reduce(mc.dp, plan.allreduce, up))


def run_plan_mpi(plan: Plan, params: dict[str, np.ndarray], batch: Batch | tuple,
                 comm: Any = None, *, mesh_comm: MeshComm | None = None,
                 device: DeviceSetup | None = None,
                 collectives: str = "steps") -> PlanResult | None:
    """Run ``plan`` on the processes of ``comm`` (default: MPI_COMM_WORLD), one per mesh
    rank; see the module docstring. Every process passes the same ``params`` (full
    shapes, like a checkpoint every rank loads) and ``batch``; each keeps only its part.
    Returns the PlanResult on rank 0 and None on the others.

    ``device`` (:mod:`ringpipe.runtime.device`): compute on the GPU the caller selected
    (shards, activations, gradients on the device; PP messages staged through the host).
    ``collectives``: ``"steps"`` (the plan's ring/tree step tables over MPI) or
    ``"nccl"`` (device only). Byte counters follow the plan's step table either way.
    """
    if getattr(plan, "kind", None) != "training":
        raise TypeError(f"run_plan_mpi: plan must be a Plan, got {type(plan).__name__}")
    mpi = load_mpi()
    mc = mesh_comm if mesh_comm is not None else MeshComm(
        plan.mesh, mpi.COMM_WORLD if comm is None else comm)
    try:
        d, p, t = mc.coord
        up = np.asarray if device is None else device.gpu.xp.asarray
        _agree_on_inputs(plan, params, batch, mc)
        inputs, targets, scale = microbatches(plan, batch, d, up)
        transport = MpiTransport(mc.pp_comm, plan.microbatches, mpi)
        need = 2 * len(plan.stages) * plan.microbatches
        if need > transport.tag_ub:
            raise ValueError(f"rank {mc.rank}: {len(plan.stages)} stages × "
                             f"{plan.microbatches} micro-batches need tags up to {need}, "
                             f"above this MPI's TAG_UB {transport.tag_ub}")
        tally = RankTally()
        tp_fn, dp_fn = _group_reduces(plan, mc, device, collectives)
        tp_reduce = CountedAllReduce(tp_fn, plan.allreduce, "tp", mc.tp.size, [mc.tp.rank],
                                     [tally])
        worker = TrainingWorker(plan, p, stage_shards(plan, params, p, [t], up), tp_reduce,
                                inputs, targets, scale, local=True)
        it = PipelineInterpreter(p, plan.schedule.actions[p], plan.schedule.placement, worker,
                                 transport if device is None else
                                 HostStagedTransport(transport, up), 1)
        it.run()
        bucket = worker.gradient_bucket(0, np if device is None else device.gpu.xp)
        CountedAllReduce(dp_fn, plan.allreduce, "dp", mc.dp.size, [mc.dp.rank],
                         [tally])([bucket])
        bucket = to_host(bucket)
        tally.bytes_sent["pp"] = it.bytes_sent[0]
        holds = t == 0 and bool(worker.losses)
        mine = RankOutput(RankCounters(mc.rank, d, p, t, it.peak, tally.bytes_sent,
                                       tally.calls),
                          worker.unpack_bucket(0, bucket) if d == 0 else None,
                          worker.losses if holds else None,
                          {mb: to_host(o) for mb, o in worker.outputs.items()} if holds
                          else None)
        everyone = mc.comm.gather(mine, root=0)
        return assemble_result(plan, everyone) if mc.rank == 0 else None
    finally:
        if mesh_comm is None:
            mc.free()
