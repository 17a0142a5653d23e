"""The price of one continuous-batching iteration on a layout: the serving loop's clock.

:class:`IterationPricer` turns an :class:`~ringpipe.runtime.batching.policy.Iteration`
into each pipeline rank's seconds and the seconds of one message between ranks
(:class:`~ringpipe.runtime.batching.engine.StagePrice`), with the calibrated
:class:`~ringpipe.cost.inference.model.InferenceModel` and nothing else:

* only decodes (b requests, attending to Σ T positions): the decode roofline,
  :meth:`InferenceModel.decode_stage` at batch b and context Σ T / b (its attention is
  linear in b·T, so the mean context prices every request's own);
* only prompt chunks: :meth:`InferenceModel.forward_stage` on their N positions, which for
  one whole prompt is the static model's prefill (:meth:`InferenceModel.prefill_stage`);
* both (a chunk beside decodes, Sarathi-Serve's hybrid batch): the forward over all N
  positions, but never less than the decodes alone would cost. Such batches come in
  every size, and pricing an all-reduce of a new size walks every step table, so their
  all-reduce time is interpolated linearly between sizes N on a grid of ratio 2^(1/32)
  (2% apart; each point priced exactly once);
* a hop is one α-β message of N·h 16-bit activations (:meth:`InferenceModel.p2p_s`), and
  the hand-back one of E·h for the E emitted tokens (the static model's message per
  sequence, so one decoding request's every hop is the static model's).

So one request served alone costs the static model's TTFT for its prompt, then the static
TPOT at each decode step's context, whose mean over the K - 1 steps is the static model's
context L + K/2: the simulator at low load reduces to :meth:`InferenceModel.predict` at
batch 1 (tested). The KV pool of a replica is what is left of 90% of HBM after the
fullest stage's weights, in blocks (:func:`kv_blocks`).
"""

from __future__ import annotations

import math

from ringpipe.cost.inference.model import ACT_BYTES, MEMORY_UTILIZATION, InferenceModel
from ringpipe.cost.inference.workload import WEIGHT_BYTES, kv_cache_bytes
from ringpipe.mesh import Mesh
from ringpipe.plan.layout import split_layers
from ringpipe.runtime.batching.engine import StagePrice
from ringpipe.runtime.batching.policy import Iteration

__all__ = ["IterationPricer", "kv_blocks", "stage_weights_bytes"]

#: The ratio between neighbouring token counts of the all-reduce grid (mixed batches).
GRID = 2 ** (1 / 32)


def stage_weights_bytes(im: InferenceModel, layout: Mesh, dtype: str) -> float:
    """Weight bytes on the fullest GPU of ``layout`` (its stage's layers, the embedding on
    the first stage and the head on the last), as :meth:`InferenceModel.predict`."""
    m = im.model
    per_stage = split_layers(m.layers, layout.pp)
    stage = [n * m.params_per_layer / layout.tp for n in per_stage]
    stage[0] += m.embedding_params / layout.tp
    stage[-1] += m.output_params / layout.tp
    return max(stage) * WEIGHT_BYTES[dtype]


def kv_blocks(im: InferenceModel, layout: Mesh, dtype: str, block_size: int) -> int:
    """KV blocks of ``block_size`` positions one replica holds: (90% of HBM - weights) over
    one block's bytes on the stage with the most layers (0 when the weights do not fit)."""
    per_block = kv_cache_bytes(im.model, block_size, 1, layout.tp,
                               max(split_layers(im.model.layers, layout.pp)), dtype)
    free = MEMORY_UTILIZATION * im.cluster.memory_bytes - stage_weights_bytes(im, layout, dtype)
    return max(int(free // per_block), 0)


class IterationPricer:
    """Prices iterations of ``layout`` (one replica) in ``dtype`` (module docstring)."""

    def __init__(self, im: InferenceModel, layout: Mesh, dtype: str = "bf16") -> None:
        self.im, self.layout, self.dtype = im, layout, dtype
        self.per_stage = split_layers(im.model.layers, layout.pp)
        self._hops: dict[int, float] = {}
        self._decodes: dict[int, list[tuple[float, float]]] = {}
        self._allreduces: dict[int, float] = {}

    def decode(self, batch: int, context: float) -> tuple[float, ...]:
        """Each rank's seconds for ``batch`` decodes at mean context ``context``: the sum
        of :meth:`InferenceModel.decode_stage`'s parts, as a + c·context per batch size
        (only its attention depends on the context, linearly)."""
        if batch not in self._decodes:
            pp, tp = self.layout.pp, self.layout.tp
            line = []
            for r, n in enumerate(self.per_stage):
                parts = self.im.decode_stage(n, r == pp - 1, batch, 1.0, tp, self.dtype)
                line.append((sum(parts.values()) - parts["attention"], parts["attention"]))
            self._decodes[batch] = line
        return tuple(a + c * context for a, c in self._decodes[batch])

    def forward(self, tokens: int, attended: float, cached: float, emitting: int,
                allreduce_s: float | None = None) -> tuple[float, ...]:
        """Each rank's seconds for a forward of ``tokens`` positions
        (:meth:`InferenceModel.forward_stage`)."""
        pp, tp = self.layout.pp, self.layout.tp
        return tuple(self.im.forward_stage(n, r == pp - 1, tokens, attended, cached, emitting,
                                           tp, self.dtype, allreduce_s)
                     for r, n in enumerate(self.per_stage))

    def _grid_allreduce(self, k: int) -> float:
        if k not in self._allreduces:
            size = round(GRID ** k)
            self._allreduces[k] = self.im.allreduce_s(size * self.im.model.hidden * ACT_BYTES,
                                                      self.layout.tp)
        return self._allreduces[k]

    def allreduce(self, tokens: int) -> float:
        """One all-reduce of ``tokens`` positions' activations, interpolated on the grid."""
        x = math.log(tokens, GRID)
        k = math.floor(x)
        lo, hi = round(GRID ** k), round(GRID ** (k + 1))
        if hi <= lo:
            return self._grid_allreduce(k)
        w = (tokens - lo) / (hi - lo)
        return (1 - w) * self._grid_allreduce(k) + w * self._grid_allreduce(k + 1)

    def hop(self, tokens: int) -> float:
        """One message of ``tokens`` positions' activations between ranks."""
        if tokens not in self._hops:
            self._hops[tokens] = self.im.p2p_s(tokens * self.im.model.hidden * ACT_BYTES,
                                               self.layout)
        return self._hops[tokens]

    def __call__(self, it: Iteration) -> StagePrice:
        decodes = [s.start for s in it.segments if s.decode]
        b = len(decodes)
        dec = self.decode(b, sum(decodes) / b + 1) if decodes else None
        if b == len(it.segments):
            return StagePrice(dec, self.hop(b), self.hop(b))  # type: ignore[arg-type]
        tokens, emitting = it.tokens, len(it.emitted)
        attended = sum(s.tokens * (s.start + s.tokens) for s in it.segments)
        cached = sum(s.start for s in it.segments)
        fwd = self.forward(tokens, attended, cached, emitting,
                           None if dec is None else self.allreduce(tokens))
        if dec is not None:
            fwd = tuple(max(a, b) for a, b in zip(fwd, dec, strict=True))
        return StagePrice(fwd, self.hop(tokens), self.hop(emitting))
