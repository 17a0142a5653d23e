"""The training worker: what a pipeline rank computes for F, B, I and W, on any runtime.

:class:`TrainingWorker` is the :class:`~ringpipe.runtime.interpreter.Worker` of a
training step. It holds the rank's stage shards (all T TP ranks in-process, one under
MPI: :meth:`~ringpipe.model.stage.StageSpec.local_view`), its micro-batches, the
activation caches between F and B/I and between I and W, the losses and head outputs of
the last stage, and the accumulated parameter gradients. The same object runs under the
in-process and the MPI runtime, so both compute every value in the same order:

* a stage's gradients accumulate in program order: the first B/W result is kept, later
  ones are added with ``+=``;
* the last stage scales each micro-batch loss by ``b / B`` (see
  :mod:`ringpipe.model.stage`), so summing over micro-batches and replicas gives the
  reference loss and gradients;
* after the pipeline, :meth:`gradient_bucket` packs each TP rank's gradients of *all* its
  stages into one flat bucket (stages in ``schedule.stages_of(p)`` order, parameters in
  forward order), which the runtime all-reduces over the DP group, as PyTorch DDP
  buckets a module's gradients; :meth:`unpack_bucket` reads the reduced bucket back.
  One bucket layout for every runtime keeps every element's ring/tree reduction order,
  and so the bits, the same across runtimes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from ringpipe.model.inputs import check_batch, check_targets
from ringpipe.model.sharding import shard_param
from ringpipe.model.stage import (
    StageSpec,
    stage_backward,
    stage_backward_input,
    stage_backward_weight,
    stage_forward,
)

if TYPE_CHECKING:
    from ringpipe.plan.training import Plan

__all__ = ["TrainingWorker", "microbatches", "stage_shards"]


def stage_shards(plan: Plan, params: dict[str, np.ndarray], p: int, tp_ranks: Sequence[int],
                 upload: Callable[[np.ndarray], Any] = np.asarray) -> dict[int, list[dict]]:
    """``{stage: [shard of TP rank t for t in tp_ranks]}`` for pipeline rank p's stages.

    A split parameter (:func:`~ringpipe.model.sharding.split_axis`) is cut into T equal
    contiguous blocks and rank t takes block t (Megatron-LM's column/row split); every
    array is a fresh C-contiguous copy, passed through ``upload`` (e.g. ``cupy.asarray``).
    """
    tp = plan.mesh.tp
    out: dict[int, list[dict]] = {}
    for s in plan.schedule.stages_of(p):
        per_rank: list[dict] = [{} for _ in tp_ranks]
        for name in plan.stages[s].param_shapes():
            for i, t in enumerate(tp_ranks):
                per_rank[i][name] = upload(shard_param(name, params[name], tp, t))
        out[s] = per_rank
    return out


def microbatches(plan: Plan, batch: object, d: int,
                 upload: Callable[[np.ndarray], Any] = np.asarray) -> tuple[list, list, float]:
    """Replica d's micro-batches: ``(inputs, targets, loss_scale)``.

    Replica d takes rows ``[d·m·b, (d+1)·m·b)`` of the global batch of B sequences and
    micro-batch j its rows ``[j·b, (j+1)·b)``, with ``b = B / (dp·m)``; each micro-batch
    loss is scaled by ``b / B``.
    """
    if not isinstance(batch, tuple) or len(batch) != 2:
        raise TypeError("batch must be a Batch(inputs, targets) or an (inputs, targets) tuple")
    inputs = check_batch(plan.config, batch[0], "batch.inputs")
    targets = check_targets(plan.config, batch[1], inputs.shape[0])
    b, m = plan.check_batch_size(inputs.shape[0]), plan.microbatches
    rows = slice(d * b * m, (d + 1) * b * m)
    mb_in = [upload(inputs[rows][j * b:(j + 1) * b]) for j in range(m)]
    mb_tg = [upload(targets[rows][j * b:(j + 1) * b]) for j in range(m)]
    return mb_in, mb_tg, b / inputs.shape[0]


class TrainingWorker:
    """Forward and backward of pipeline rank p's stages; see the module docstring.

    ``shards`` come from :func:`stage_shards`; with ``local`` the rank holds one TP rank
    (lists of length 1) and ``tp_reduce`` sums over a communicator, else it holds all T
    and ``tp_reduce`` reduces the T buffers it is given.
    """

    def __init__(self, plan: Plan, p: int, shards: dict[int, list[dict]],
                 tp_reduce: Callable[[list], None], inputs: list, targets: list,
                 loss_scale: float, local: bool) -> None:
        self.plan, self.p = plan, p
        self.shards = shards
        self.specs: dict[int, StageSpec] = {
            s: plan.stages[s].local_view() if local else plan.stages[s] for s in shards}
        self.tp_here = 1 if local else plan.mesh.tp
        self.tp_reduce = tp_reduce
        self.inputs, self.targets, self.loss_scale = inputs, targets, loss_scale
        self.last_stage = len(plan.stages) - 1
        self.caches: dict[tuple[int, int], Any] = {}
        self.wcaches: dict[tuple[int, int], Any] = {}
        self.grads: dict[int, list[dict]] = {}
        self.losses: dict[int, float] = {}
        self.outputs: dict[int, Any] = {}

    # -- the Worker protocol -----------------------------------------------------------
    def forward(self, stage: int, mb: int, inputs: list | None) -> list | None:
        xs = [self.inputs[mb]] * self.tp_here if inputs is None else inputs
        last = stage == self.last_stage
        out, cache = stage_forward(self.specs[stage], self.shards[stage], xs, self.tp_reduce,
                                   self.targets[mb] if last else None, self.loss_scale)
        self.caches[(stage, mb)] = cache
        if last:
            self.losses[mb], self.outputs[mb] = out, cache.output
            return None
        return out

    def backward(self, stage: int, mb: int, grads: list | None) -> list | None:
        dxs, weight_grads = stage_backward(self.specs[stage], self.caches.pop((stage, mb)),
                                           grads, self.tp_reduce)
        self._accumulate(stage, weight_grads)
        return dxs

    def backward_input(self, stage: int, mb: int, grads: list | None) -> list | None:
        dxs, self.wcaches[(stage, mb)] = stage_backward_input(
            self.specs[stage], self.caches.pop((stage, mb)), grads, self.tp_reduce)
        return dxs

    def backward_weight(self, stage: int, mb: int) -> None:
        self._accumulate(stage, stage_backward_weight(self.specs[stage],
                                                      self.wcaches.pop((stage, mb))))

    def message_shape(self, key: tuple[str, int, int]) -> tuple[tuple[int, ...], Any]:
        cfg = self.plan.config
        return (self.inputs[key[2]].shape[0], cfg.seq, cfg.hidden), cfg.np_dtype

    def _accumulate(self, stage: int, grads: list[dict]) -> None:
        if stage not in self.grads:
            self.grads[stage] = grads
            return
        for acc, g in zip(self.grads[stage], grads, strict=True):
            for name, value in g.items():
                acc[name] += value

    # -- the DP bucket -----------------------------------------------------------------
    def _bucket_keys(self, i: int) -> list[tuple[int, str]]:
        return [(s, n) for s in self.plan.schedule.stages_of(self.p) for n in self.grads[s][i]]

    def gradient_bucket(self, i: int, xp: ModuleType = np) -> Any:
        """Local TP rank i's gradients of all its stages as one flat bucket."""
        return xp.concatenate([self.grads[s][i][n].reshape(-1) for s, n in self._bucket_keys(i)])

    def unpack_bucket(self, i: int, bucket: Any) -> dict[int, dict[str, Any]]:
        """``{stage: {name: gradient}}`` views into a (reduced) bucket of local TP rank i."""
        out: dict[int, dict[str, Any]] = {s: {} for s in self.plan.schedule.stages_of(self.p)}
        start = 0
        for s, n in self._bucket_keys(i):
            shape = self.grads[s][i][n].shape
            size = int(np.prod(shape))
            out[s][n] = bucket[start:start + size].reshape(shape)
            start += size
        return out
