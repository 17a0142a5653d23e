"""What a plan run returns, and how every runtime assembles it from its ranks.

Each mesh rank ends a run with a :class:`RankOutput` (its counters, and where it holds
them its replica-0 gradients, losses and head outputs). The in-process runtime builds
all of them at once; the MPI runtime gathers them to rank 0. Both then call
:func:`assemble_result`, so the loss is summed and the gradients reassembled in one
order on every runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ringpipe.arrays import to_host
from ringpipe.mesh import Mesh
from ringpipe.model.blocks.ring_attention import cp_positions
from ringpipe.model.sharding import expert_axis, gather_grads, join_expert_shards

if TYPE_CHECKING:
    from ringpipe.plan.training import Plan

__all__ = ["Batch", "PlanResult", "RankCounters", "RankOutput", "assemble_result",
           "holds_grads"]


class Batch(NamedTuple):
    """A global batch: model inputs and their targets, first dim = batch."""

    inputs: np.ndarray
    targets: np.ndarray


@dataclass(frozen=True)
class RankCounters:
    """What one mesh rank did in a run.

    ``peak_activations``: most micro-batches whose forward activations its pipeline rank
    held at once (from F until B, or until I when backward is split), all its stages
    together. ``bytes_sent`` and ``allreduce_calls`` are per group: "tp" (the layers'
    all-reduces), "pp" (activations and gradients to neighbour stages), "dp" (the dense
    gradient all-reduce, over DP × CP), "cp" (ring attention's K/V blocks), "ep" (the
    MoE all-to-alls), "edp" (the expert gradient all-reduce)
    (:class:`~ringpipe.runtime.groups.RankTally`).
    """

    rank: int
    dp: int
    pp: int
    tp: int
    peak_activations: int
    bytes_sent: dict[str, int]
    allreduce_calls: dict[str, int]
    cp: int = 0


@dataclass(frozen=True)
class PlanResult:
    """Loss, head outputs (global batch order), full-shape gradients, and counters."""

    loss: float
    outputs: np.ndarray
    grads: dict[str, np.ndarray]
    counters: tuple[RankCounters, ...]
    aux_loss: float = 0.0
    mesh: Mesh | None = None

    @property
    def peak_activations(self) -> list[int]:
        """Peak activations held, per pipeline rank (replica 0, CP rank 0, tp rank 0)."""
        return [c.peak_activations for c in self.counters
                if c.dp == 0 and c.tp == 0 and c.cp == 0]

    def allreduce_ops(self, group: str) -> int:
        """Collective all-reduce operations of ``group`` ("tp", "dp", "cp" or "edp"),
        each counted once (every rank of the group takes part in it)."""
        last = self.counters[-1]
        sizes = {"tp": last.tp + 1, "dp": (last.dp + 1) * (last.cp + 1), "cp": last.cp + 1,
                 "edp": self.mesh.edp if self.mesh is not None else last.dp + 1}
        if group not in sizes:
            raise ValueError(f"group must be one of {', '.join(map(repr, sizes))} (all-reduce "
                             f"groups), got {group!r}")
        return sum(c.allreduce_calls.get(group, 0) for c in self.counters) // sizes[group]

    @property
    def allreduce_calls(self) -> int:
        """All-reduce operations of every group, each counted once."""
        return sum(self.allreduce_ops(g) for g in ("tp", "dp", "cp", "edp"))



@dataclass(frozen=True)
class RankOutput:
    """What one mesh rank brings to the result: its counters; its gradients
    ``{stage: {name: shard gradient}}`` if it holds replica 0's dense gradients (DP and
    CP coordinate 0) or expert data-parallel rank 0's expert gradients; its losses and
    head outputs ``{micro-batch: ...}`` if it is TP rank 0 of the last stage's pipeline
    rank; its part of the MoE auxiliary loss (summed over its stages and micro-batches)
    if it is a TP rank 0."""

    counters: RankCounters
    grads: dict[int, dict[str, Any]] | None = None
    losses: dict[int, float] | None = None
    outputs: dict[int, Any] | None = None
    aux_loss: float = 0.0


def holds_grads(mesh: Mesh, rank: int) -> bool:
    """Whether mesh rank ``rank`` brings its gradients to the result (RankOutput)."""
    c = mesh.coord(rank)
    return (c.dp == 0 and c.cp == 0) or mesh.expert_coord(rank).edp == 0


def _expert_holder(mesh: Mesh, p: int, e: int, t: int) -> int:
    """The mesh rank at expert coordinates (edp 0, pp p, ep e, etp t)."""
    return next(r for r in mesh.group("ep", mesh.rank(0, p, t)) if
                mesh.expert_coord(r).ep == e)


def assemble_result(plan: Plan, ranks: list[RankOutput]) -> PlanResult:
    """The :class:`PlanResult` from every mesh rank's output (``ranks[r]`` = mesh rank r):
    full-shape gradients from replica 0's TP shards (:func:`gather_grads`; the expert
    weights joined over the EP ranks of expert-data-parallel rank 0), the loss summed
    over replicas, CP ranks, then micro-batches, outputs in global batch order (each CP
    rank's positions put back in place), the auxiliary loss summed over every TP rank 0."""
    mesh = plan.mesh
    full: dict[str, np.ndarray] = {}
    for p in range(mesh.pp):
        for s in plan.schedule.stages_of(p):
            per_tp = []
            for t in range(mesh.tp):
                per_ep = [{n: to_host(g) for n, g in
                           ranks[_expert_holder(mesh, p, e, t)].grads[s].items()}
                          for e in range(mesh.ep)]
                joined = join_expert_shards(per_ep)
                dense = ranks[mesh.rank(0, p, t)].grads[s]
                per_tp.append({n: joined[n] if expert_axis(n) is not None else to_host(g)
                               for n, g in dense.items()})
            full.update(gather_grads(plan.config, per_tp, mesh.tp))
    last = plan.schedule.placement[len(plan.stages) - 1]
    loss, outputs = 0.0, []
    for d in range(mesh.dp):
        for mb in range(plan.microbatches):
            parts = []
            for c in range(mesh.cp):
                held = ranks[mesh.rank(d, last, 0, c)]
                loss += held.losses[mb]
                parts.append((cp_positions(plan.config.seq, mesh.cp, c),
                              to_host(held.outputs[mb])))
            first = parts[0][1]
            out = np.empty((first.shape[0], plan.config.seq, first.shape[2]), first.dtype)
            for pos, part in parts:
                out[:, pos] = part
            outputs.append(out)
    counters = tuple(out.counters for out in ranks)
    aux = sum(out.aux_loss for out in ranks)
    return PlanResult(float(loss), np.concatenate(outputs), full, counters, float(aux), mesh)
