"""The training worker: what a pipeline rank computes for F, B, I and W, on any runtime.

:class:`TrainingWorker` is the :class:`~ringpipe.runtime.interpreter.Worker` of a
training step. It holds the stage shards of the mesh ranks it runs — in-process every
rank of its pipeline position (every TP rank of every CP rank and DP replica, because
the layers' collectives need them all: the MoE all-to-all crosses replicas), under MPI
its own — their micro-batches, the activation caches between F and B/I and between I
and W, the losses, head outputs and MoE auxiliary losses, and the accumulated parameter
gradients. Lists are per rank held, in mesh-rank order. The same object runs under the
in-process and the MPI runtime, so both compute every value in the same order:

* a stage's gradients accumulate in program order: the first B/W result is kept, later
  ones are added with ``+=``;
* the last stage scales each micro-batch loss by ``b / B`` (see
  :mod:`ringpipe.model.stage`; with CP each rank's share is its positions'), so summing
  over micro-batches, CP ranks and replicas gives the reference loss and gradients;
* after the pipeline, :meth:`gradient_bucket` packs each rank's gradients of *all* its
  stages into flat buckets (stages in ``schedule.stages_of(p)`` order, parameters in
  forward order), which the runtime all-reduces, as PyTorch DDP and Megatron-LM bucket
  them: the **dense** bucket over the DP × CP group (weights are replicated over both),
  the **expert** bucket (``moe.experts.*``) over the expert-data-parallel group
  (:mod:`ringpipe.mesh`); :meth:`unpack_bucket` reads a reduced bucket back. One bucket
  layout for every runtime keeps every element's reduction order, and so the bits, the
  same across runtimes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from ringpipe.model.blocks.comm import LayerComm
from ringpipe.model.blocks.ring_attention import cp_positions
from ringpipe.model.inputs import check_batch, check_targets
from ringpipe.model.sharding import expert_axis, shard_param
from ringpipe.model.stage import (
    StageSpec,
    stage_backward,
    stage_backward_input,
    stage_backward_weight,
    stage_forward,
)

if TYPE_CHECKING:
    from ringpipe.plan.training import Plan

__all__ = ["BUCKETS", "TrainingWorker", "microbatches", "rank_microbatches", "stage_shards"]

#: The gradient buckets: reduced over DP × CP ("dense") and over EDP ("expert").
BUCKETS = ("dense", "expert")


def stage_shards(plan: Plan, params: dict[str, np.ndarray], p: int, ranks: Sequence[int],
                 upload: Callable[[np.ndarray], Any] = np.asarray) -> dict[int, list[dict]]:
    """``{stage: [shard of mesh rank r for r in ranks]}`` for pipeline rank p's stages.

    A split parameter (:func:`~ringpipe.model.sharding.split_axis`) is cut into T equal
    contiguous blocks and TP rank t takes block t (Megatron-LM's column/row split); the
    stacked expert weights are also cut into ep blocks, EP rank e taking block e. Every
    array is a fresh C-contiguous copy, passed through ``upload`` (e.g.
    ``cupy.asarray``); ranks with the same TP and EP coordinates share theirs (read
    only: the stages never write a weight).
    """
    mesh = plan.mesh
    out: dict[int, list[dict]] = {}
    made: dict[tuple[int, str, int, int], Any] = {}
    for s in plan.schedule.stages_of(p):
        per_rank: list[dict] = [{} for _ in ranks]
        for name in plan.stages[s].param_shapes():
            for i, r in enumerate(ranks):
                t = mesh.coord(r).tp
                e = mesh.expert_coord(r).ep if expert_axis(name) is not None else 0
                key = (s, name, t, e)
                if key not in made:
                    made[key] = upload(shard_param(name, params[name], mesh.tp, t, mesh.ep, e))
                per_rank[i][name] = made[key]
        out[s] = per_rank
    return out


def _checked_batch(plan: Plan, batch: object) -> tuple[Any, Any, int, int]:
    if not isinstance(batch, tuple) or len(batch) != 2:
        raise TypeError("batch must be a Batch(inputs, targets) or an (inputs, targets) tuple")
    inputs = check_batch(plan.config, batch[0], "batch.inputs")
    targets = check_targets(plan.config, batch[1], inputs.shape[0])
    return inputs, targets, plan.check_batch_size(inputs.shape[0]), inputs.shape[0]


def microbatches(plan: Plan, batch: object, d: int,
                 upload: Callable[[np.ndarray], Any] = np.asarray) -> tuple[list, list, float]:
    """Replica d's micro-batches: ``(inputs, targets, loss_scale)``.

    Replica d takes rows ``[d·m·b, (d+1)·m·b)`` of the global batch of B sequences and
    micro-batch j its rows ``[j·b, (j+1)·b)``, with ``b = B / (dp·m)``; each micro-batch
    loss is scaled by ``b / B``.
    """
    inputs, targets, b, total = _checked_batch(plan, batch)
    m = plan.microbatches
    rows = slice(d * b * m, (d + 1) * b * m)
    mb_in = [upload(inputs[rows][j * b:(j + 1) * b]) for j in range(m)]
    mb_tg = [upload(targets[rows][j * b:(j + 1) * b]) for j in range(m)]
    return mb_in, mb_tg, b / total


def rank_microbatches(plan: Plan, batch: object, ranks: Sequence[int],
                      upload: Callable[[np.ndarray], Any] = np.asarray
                      ) -> tuple[list[list], list[list], float]:
    """Per mesh rank in ``ranks``, its micro-batches ``[mb]`` (inputs, targets) and the
    loss scale b / B: its replica's (:func:`microbatches`), cut to the sequence positions
    of its CP rank (:func:`~ringpipe.model.blocks.ring_attention.cp_positions`); ranks of one
    (replica, CP rank) share the arrays."""
    inputs, targets, b, total = _checked_batch(plan, batch)
    mesh, m = plan.mesh, plan.microbatches
    made: dict[tuple[int, int], tuple[list, list]] = {}
    per_in, per_tg = [], []
    for r in ranks:
        d, c = mesh.coord(r).dp, mesh.coord(r).cp
        if (d, c) not in made:
            pos = cp_positions(plan.config.seq, mesh.cp, c)
            rows = [slice((d * m + j) * b, (d * m + j + 1) * b) for j in range(m)]
            made[(d, c)] = ([upload(np.ascontiguousarray(inputs[w][:, pos])) for w in rows],
                            [upload(np.ascontiguousarray(targets[w][:, pos])) for w in rows])
        per_in.append(made[(d, c)][0])
        per_tg.append(made[(d, c)][1])
    return per_in, per_tg, b / total


class TrainingWorker:
    """Forward and backward of pipeline rank p's stages for the mesh ranks ``ranks``; see
    the module docstring. ``shards`` come from :func:`stage_shards`, ``inputs`` and
    ``targets`` from :func:`rank_microbatches`, and ``comm`` is the layers'
    :class:`~ringpipe.model.blocks.comm.LayerComm` for those ranks."""

    def __init__(self, plan: Plan, p: int, ranks: Sequence[int], shards: dict[int, list[dict]],
                 comm: LayerComm, inputs: list[list], targets: list[list],
                 loss_scale: float) -> None:
        self.plan, self.p, self.ranks = plan, p, tuple(ranks)
        self.shards = shards
        self.specs: dict[int, StageSpec] = {
            s: replace(plan.stages[s], holds=len(self.ranks)) for s in shards}
        self.comm = comm
        self.inputs, self.targets, self.loss_scale = inputs, targets, loss_scale
        self.last_stage = len(plan.stages) - 1
        self.caches: dict[tuple[int, int], Any] = {}
        self.wcaches: dict[tuple[int, int], Any] = {}
        self.grads: dict[int, list[dict]] = {}
        self.losses: dict[int, list[float]] = {}
        self.outputs: dict[int, list] = {}
        self.aux: dict[int, list[float]] = {}

    # -- the Worker protocol -----------------------------------------------------------
    def forward(self, stage: int, mb: int, inputs: list | None) -> list | None:
        xs = [rank[mb] for rank in self.inputs] if inputs is None else inputs
        last = stage == self.last_stage
        out, cache = stage_forward(self.specs[stage], self.shards[stage], xs, self.comm,
                                   [rank[mb] for rank in self.targets] if last else None,
                                   self.loss_scale)
        self.caches[(stage, mb)] = cache
        held = self.aux.setdefault(mb, [0.0] * len(self.ranks))
        self.aux[mb] = [a + b for a, b in zip(held, cache.aux, strict=True)]
        if last:
            self.losses[mb], self.outputs[mb] = cache.losses, cache.outputs
            return None
        return out

    def backward(self, stage: int, mb: int, grads: list | None) -> list | None:
        dxs, weight_grads = stage_backward(self.specs[stage], self.caches.pop((stage, mb)),
                                           grads, self.comm)
        self._accumulate(stage, weight_grads)
        return dxs

    def backward_input(self, stage: int, mb: int, grads: list | None) -> list | None:
        dxs, self.wcaches[(stage, mb)] = stage_backward_input(
            self.specs[stage], self.caches.pop((stage, mb)), grads, self.comm)
        return dxs

    def backward_weight(self, stage: int, mb: int) -> None:
        self._accumulate(stage, stage_backward_weight(self.specs[stage],
                                                      self.wcaches.pop((stage, mb))))

    def message_shape(self, key: tuple[str, int, int]) -> tuple[tuple[int, ...], Any]:
        cfg = self.plan.config
        return ((self.inputs[0][key[2]].shape[0], cfg.seq // self.plan.mesh.cp, cfg.hidden),
                cfg.np_dtype)

    def _accumulate(self, stage: int, grads: list[dict]) -> None:
        if stage not in self.grads:
            self.grads[stage] = grads
            return
        for acc, g in zip(self.grads[stage], grads, strict=True):
            for name, value in g.items():
                acc[name] += value

    # -- the DP and EDP buckets --------------------------------------------------------
    def _bucket_keys(self, i: int, kind: str) -> list[tuple[int, str]]:
        expert = kind == "expert"
        return [(s, n) for s in self.plan.schedule.stages_of(self.p) for n in self.grads[s][i]
                if (expert_axis(n) is not None) == expert]

    def has_bucket(self, kind: str) -> bool:
        """Whether the ``kind`` bucket (:data:`BUCKETS`) holds any gradient."""
        return bool(self._bucket_keys(0, kind))

    def gradient_bucket(self, i: int, xp: ModuleType = np, kind: str = "dense") -> Any:
        """Rank i's (of the ranks held) ``kind`` gradients of all its stages, flat."""
        return xp.concatenate([self.grads[s][i][n].reshape(-1)
                               for s, n in self._bucket_keys(i, kind)])

    def unpack_bucket(self, i: int, bucket: Any, kind: str = "dense"
                      ) -> dict[int, dict[str, Any]]:
        """``{stage: {name: gradient}}`` views into a (reduced) bucket of rank i."""
        out: dict[int, dict[str, Any]] = {s: {} for s in self.plan.schedule.stages_of(self.p)}
        start = 0
        for s, n in self._bucket_keys(i, kind):
            shape = self.grads[s][i][n].shape
            size = int(np.prod(shape))
            out[s][n] = bucket[start:start + size].reshape(shape)
            start += size
        return out
