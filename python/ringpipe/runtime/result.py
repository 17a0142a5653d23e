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
from ringpipe.model.sharding import gather_grads

if TYPE_CHECKING:
    from ringpipe.plan.training import Plan

__all__ = ["Batch", "PlanResult", "RankCounters", "RankOutput", "assemble_result"]


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
    all-reduces), "pp" (activations and gradients to neighbour stages), "dp" (the
    gradient all-reduce).
    """

    rank: int
    dp: int
    pp: int
    tp: int
    peak_activations: int
    bytes_sent: dict[str, int]
    allreduce_calls: dict[str, int]


@dataclass(frozen=True)
class PlanResult:
    """Loss, head outputs (global batch order), full-shape gradients, and counters."""

    loss: float
    outputs: np.ndarray
    grads: dict[str, np.ndarray]
    counters: tuple[RankCounters, ...]

    @property
    def peak_activations(self) -> list[int]:
        """Peak activations held, per pipeline rank (replica 0, tp rank 0)."""
        return [c.peak_activations for c in self.counters if c.dp == 0 and c.tp == 0]

    def allreduce_ops(self, group: str) -> int:
        """Collective all-reduce operations of ``group`` ("tp" or "dp"), each counted once
        (every rank of the group takes part in it)."""
        sizes = {"tp": self.counters[-1].tp + 1, "dp": self.counters[-1].dp + 1}
        if group not in sizes:
            raise ValueError(f"group must be 'tp' or 'dp' (all-reduce groups), got {group!r}")
        size = sizes[group]
        return sum(c.allreduce_calls[group] for c in self.counters) // size

    @property
    def allreduce_calls(self) -> int:
        """All-reduce operations of every group, each counted once."""
        return self.allreduce_ops("tp") + self.allreduce_ops("dp")



@dataclass(frozen=True)
class RankOutput:
    """What one mesh rank brings to the result: its counters; its gradients
    ``{stage: {name: shard gradient}}`` if it is in replica 0; its losses and head
    outputs ``{micro-batch: ...}`` if it is TP rank 0 of the last stage's pipeline rank."""

    counters: RankCounters
    grads: dict[int, dict[str, Any]] | None = None
    losses: dict[int, float] | None = None
    outputs: dict[int, Any] | None = None


def assemble_result(plan: Plan, ranks: list[RankOutput]) -> PlanResult:
    """The :class:`PlanResult` from every mesh rank's output (``ranks[r]`` = mesh rank r):
    full-shape gradients from replica 0's TP shards (:func:`gather_grads`), the loss
    summed over replicas then micro-batches, outputs in global batch order."""
    mesh = plan.mesh
    full: dict[str, np.ndarray] = {}
    for p in range(mesh.pp):
        for s in plan.schedule.stages_of(p):
            per_tp = [{n: to_host(g) for n, g in ranks[mesh.rank(0, p, t)].grads[s].items()}
                      for t in range(mesh.tp)]
            full.update(gather_grads(plan.config, per_tp, mesh.tp))
    last = plan.schedule.placement[len(plan.stages) - 1]
    loss, outputs = 0.0, []
    for d in range(mesh.dp):
        held = ranks[mesh.rank(d, last, 0)]
        for mb in range(plan.microbatches):
            loss += held.losses[mb]
            outputs.append(to_host(held.outputs[mb]))
    counters = tuple(out.counters for out in ranks)
    return PlanResult(float(loss), np.concatenate(outputs), full, counters)
