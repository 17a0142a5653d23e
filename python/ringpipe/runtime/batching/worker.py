"""Continuous batching on the one pipeline interpreter: a worker whose micro-batch is a lane.

A replica's :class:`~ringpipe.runtime.batching.engine.ServingTrace` lists the iterations
in start order, each in a lane. It lowers to :func:`~ringpipe.schedules.generators.decode.
continuous`: stage ``k·p + r`` is pipeline rank r at the lane's k-th iteration and the
micro-batch is the lane, so the interpreter runs it like any decode schedule, and the
token hand-back from the last rank to the first is an ordinary stage boundary.

:class:`ServingWorker.forward` looks the iteration up and runs its segments through the
rank's layers at once (:func:`~ringpipe.model.inference_stage.ragged_stage_step`): the
first rank feeds each prompt chunk's ids and each decoding request's latest token (which
arrived in the hand-back of the lane's previous iteration); every rank writes the new
keys and values into its paged KV shard at the request's block table; the last rank keeps
the logits of the segments that emit a token and hands the greedy tokens back. Padding
iterations (a lane with fewer iterations than the longest) compute nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ringpipe.arrays import to_host
from ringpipe.model.inference_stage import InferenceSpec, ragged_stage_step
from ringpipe.runtime.batching.policy import BatchingPolicy, Iteration
from ringpipe.runtime.interpreter import Key

if TYPE_CHECKING:
    from ringpipe.runtime.batching.engine import ServingTrace

__all__ = ["ServingWorker", "lane_steps"]


def lane_steps(trace: ServingTrace) -> dict[tuple[int, int], Iteration]:
    """``(lane, k)`` -> the lane's k-th iteration, from the trace's start order."""
    seen: dict[int, int] = {}
    steps = {}
    for timed in trace.iterations:
        lane = timed.iteration.lane
        steps[(lane, seen.get(lane, 0))] = timed.iteration
        seen[lane] = seen.get(lane, 0) + 1
    return steps


class ServingWorker:
    """Pipeline rank ``p`` of ``pp`` serving ``trace``'s iterations (module docstring).

    ``spec``: the rank's :class:`InferenceSpec` (its local view under MPI); ``shards``: one
    inference shard per TP rank held here; ``prompts``: request id -> ``(L,)`` ids.
    """

    def __init__(self, spec: InferenceSpec, p: int, pp: int, shards: list[dict], reduce: Any,
                 trace: ServingTrace, prompts: dict[int, np.ndarray], policy: BatchingPolicy,
                 xp: Any = np) -> None:
        self.spec, self.p, self.pp, self.reduce, self.xp = spec, p, pp, reduce, xp
        self.shards = [{n: s[n] for n in spec.param_shapes()} for s in shards]
        self.steps = lane_steps(trace)
        self.prompts = prompts
        self.prompt_len = {r.request.id: r.request.prompt_len for r in trace.requests}
        self.tables = {i: np.asarray(t, dtype=np.int64) for i, t in trace.tables.items()}
        self.caches = spec.allocate_paged(policy.num_blocks, policy.block_size, xp)
        self.fed: dict[tuple[int, int], int] = {}  # (request, token index) -> token id
        self.logits: dict[tuple[int, int], np.ndarray] = {}

    def _ids(self, it: Iteration) -> np.ndarray:
        parts = []
        for s in it.segments:
            if s.decode:
                parts.append(np.asarray([self.fed[(s.request, s.start - self.prompt_len[
                    s.request])]], dtype=np.int64))
            else:
                parts.append(np.asarray(self.prompts[s.request][s.start:s.start + s.tokens],
                                        dtype=np.int64))
        return self.xp.asarray(np.concatenate(parts))

    def forward(self, stage: int, mb: int, inputs: list | None) -> list:
        step, r = divmod(stage, self.pp)
        if r != self.p:
            raise ValueError(f"pipeline rank {self.p}: stage {stage} belongs to rank {r}")
        spec, here, xp = self.spec, self.spec.ranks_here, self.xp
        prev = self.steps.get((mb, step - 1))
        if spec.is_first and inputs is not None and prev is not None:  # the lane's tokens
            for s, tok in zip(prev.emitted, to_host(inputs[0]), strict=True):
                self.fed[(s.request, s.emits)] = int(tok)
        it = self.steps.get((mb, step))
        if it is None:  # padding: nothing to compute
            shape = (0,) if spec.is_last else (0, spec.config.hidden)
            dtype = np.int64 if spec.is_last else spec.config.np_dtype
            return [xp.zeros(shape, dtype=dtype) for _ in range(here)]
        xs = [self._ids(it)] * here if spec.is_first else inputs
        segments = [(self.tables[s.request], s.start, s.tokens) for s in it.segments]
        out = ragged_stage_step(spec, self.shards, xs, self.caches, segments, self.reduce)
        if not spec.is_last:
            return out
        rows = [j for j, s in enumerate(it.segments) if s.emits >= 0]
        for j in rows:
            s = it.segments[j]
            self.logits[(s.request, s.emits)] = to_host(out[0][j])
        tokens = xp.argmax(out[0][rows], axis=-1).astype(np.int64)
        return [tokens.copy() for _ in range(here)]

    def message_shape(self, key: Key) -> tuple[tuple[int, ...], Any]:
        _, stage, lane = key
        step, r = divmod(stage, self.pp)
        if r == 0:  # the hand-back: one token id per emitting segment of the last step
            prev = self.steps.get((lane, step - 1))
            return (len(prev.emitted) if prev else 0,), np.dtype(np.int64)
        it = self.steps.get((lane, step))
        return (it.tokens if it else 0, self.spec.config.hidden), self.spec.config.np_dtype

    def _forward_only(self, *_: object) -> None:
        raise ValueError(f"pipeline rank {self.p}: serving schedules are forward-only")

    backward = backward_input = backward_weight = _forward_only

    @property
    def kv_cache_bytes(self) -> list[int]:
        """Per TP rank held here, the bytes of its paged KV cache."""
        return [c.nbytes for c in self.caches]
