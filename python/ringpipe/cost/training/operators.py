"""One transformer layer as its operators: seconds per micro-batch on one TP rank.

Shapes after the TP (and SP) split, for a micro-batch of b sequences of length s
(T = b·s tokens), hidden h, heads a, KV heads g, head dim d = h/a, FFN width f, TP t:

======  =====================  ==========================================
GEMM    forward M × N × K      (Megatron: column-parallel, row-parallel)
======  =====================  ==========================================
QKV     T × (h + 2·g·d)/t × h  column-parallel
proj    T × h × h/t            row-parallel
fc1     T × f·(2 if SwiGLU)/t × h  column-parallel
fc2     T × h × f/t            row-parallel
======  =====================  ==========================================

The backward of each GEMM is the input gradient (T × K × N, charged to I) and the weight
gradient (K × N × T, charged to W: zero-bubble schedules run it separately). Each is
priced by :meth:`ringpipe.cost.hardware.gpu.GpuKernels.gemm_time` (roofline with wave
quantisation).

**Attention core.** Without flash attention: batched GEMMs QKᵀ (s × s × d) and
attention × V (s × d × s) over b·a/t heads, plus memory-bound softmax (read and write
2 bytes per score) and, with dropout, dropout (2 + 2 + 1 bytes); the backward runs
the four GEMM gradients and the softmax/dropout gradients (6 and 5 bytes per score);
selective recomputation reruns the forward core in the backward. With flash attention
the causal kernel executes half of the 4·b·s²·h/t FLOPs forward and 2.5 times that
backward (it recomputes the scores; FlashAttention-2 §3.1.2) at ``flash_fraction`` of
peak; selective recomputation then reruns the norms and the MLP activation in the
backward instead (:mod:`ringpipe.cost.training.memory`).

**Memory-bound operators** (bytes per forward; the backward moves twice as much):
two norms 2·2·T·h, two residual adds 3·2·T·h, with dropout two dropouts 5·T·h — all ÷t
under SP — the MLP activation 2·2·T·f/t (GeLU) or 3·2·T·f/t (SwiGLU), rotary
embeddings 2·2·T·(h + g·d)/t (models without learned positions).

**Tensor-parallel communication** per layer and micro-batch, on the critical path
(Megatron does not overlap it by default): without SP, all-reduces of T·h elements, 2 in
the forward and 2 in the backward; with SP each becomes a reduce-scatter plus an
all-gather of the same tensor (Korthikanti et al. 2022, §4.2.2). The all-gathers SP
repeats in the backward to rebuild the saved inputs of the weight gradients overlap the
input-gradient GEMMs (as Megatron schedules them) and are not charged. Full
recomputation repeats the forward, communication included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ringpipe.cost.hardware.cluster import Cluster
from ringpipe.cost.hardware.collectives import CollectiveModel
from ringpipe.cost.training.recipe import Recipe
from ringpipe.model.config import ModelConfig
from ringpipe.plan.layout import PipelineLayout


@dataclass(frozen=True)
class OpTimes:
    """Seconds per micro-batch: forward, input gradient, weight gradient, the TP
    communication included in them (forward + backward), and the computation included
    in them (every kernel but the TP collectives). ``compute`` is summed from the
    kernels' own times, never taken as the passes minus ``tp_comm``: when one term
    dwarfs the others that difference cancels to rounding noise, even below zero."""

    forward: float
    backward_input: float
    backward_weight: float
    tp_comm: float
    compute: float

    def __add__(self, other: OpTimes) -> OpTimes:
        return OpTimes(self.forward + other.forward,
                       self.backward_input + other.backward_input,
                       self.backward_weight + other.backward_weight,
                       self.tp_comm + other.tp_comm, self.compute + other.compute)

    def times(self, n: int) -> OpTimes:
        """``n`` of these in a row (a stage of ``n`` layers)."""
        return OpTimes(n * self.forward, n * self.backward_input, n * self.backward_weight,
                       n * self.tp_comm, n * self.compute)


@dataclass(frozen=True)
class LayerCosts:
    """Operator costs of one configuration's layers on one TP rank (module docstring)."""

    model: ModelConfig
    cluster: Cluster
    recipe: Recipe
    tp_group: tuple[int, ...]
    comms: CollectiveModel
    nbytes: int = 2

    @property
    def tp(self) -> int:
        """TP size."""
        return len(self.tp_group)

    def _gemms(self, m: float, n: float, k: float) -> tuple[float, float, float]:
        g, c = self.cluster.kernels, self.cluster
        rate, hbm = c.achievable_flops, c.memory_bandwidth
        return (g.gemm_time(m, n, k, rate, hbm), g.gemm_time(m, k, n, rate, hbm),
                g.gemm_time(k, n, m, rate, hbm))

    def _mem(self, nbytes: float) -> float:
        return self.cluster.kernels.memory_time(nbytes, self.cluster.memory_bandwidth)

    def _collective(self, name: str, nbytes: float) -> float:
        if self.tp == 1:
            return 0.0
        return self.comms.best(name, nbytes, self.tp_group).time

    def tp_layer_comm(self, batch: int) -> float:
        """TP communication of one layer's forward (half of forward + backward)."""
        act = float(self.model.seq * batch * self.model.hidden * self.nbytes)
        if self.recipe.sequence_parallel:
            return 2 * (self._collective("all_gather", act)
                        + self._collective("reduce_scatter", act))
        return 2 * self._collective("all_reduce", act)

    def attention_core(self, batch: int, recompute: str) -> tuple[float, float]:
        """(forward, backward) seconds of the attention core on one TP rank."""
        mdl, c, t = self.model, self.cluster, self.tp
        s, heads = mdl.seq, batch * mdl.heads // t
        if self.recipe.flash_attention:
            fwd_flops = 0.5 * 4.0 * batch * s * s * mdl.hidden / t  # causal
            rate = c.peak_flops * c.kernels.flash_fraction
            fwd = max(fwd_flops / rate, c.kernels.launch_overhead)
            return fwd, 2.5 * fwd
        g, rate, hbm = c.kernels, c.achievable_flops, c.memory_bandwidth
        d = mdl.hidden // mdl.heads
        qk = g.gemm_time(s, s, d, rate, hbm, batch=heads)
        av = g.gemm_time(s, d, s, rate, hbm, batch=heads)
        scores = float(heads * s * s)
        drop = mdl.dropout
        fwd = qk + av + self._mem(4 * scores) + (self._mem(5 * scores) if drop else 0.0)
        bwd = 2 * qk + 2 * av + self._mem(6 * scores) + (self._mem(5 * scores) if drop
                                                          else 0.0)
        if recompute == "selective":
            bwd += fwd
        return fwd, bwd

    def memory_bound(self, batch: int, recomputed_only: bool = False) -> float:
        """Forward seconds of the layer's memory-bound operators (module docstring);
        ``recomputed_only``: just the norms and the MLP activation."""
        mdl, t, e = self.model, self.tp, self.nbytes
        tokens = float(mdl.seq * batch)
        rep = 1.0 / t if self.recipe.sequence_parallel else 1.0
        th = tokens * mdl.hidden * rep
        act = (3 if mdl.gated_mlp else 2) * e * tokens * mdl.ffn / t
        if recomputed_only:
            return sum(self._mem(x) for x in (2 * e * th, 2 * e * th, act))
        ops = [2 * e * th, 2 * e * th, 3 * e * th, 3 * e * th, act]
        if mdl.dropout:
            ops += [(2 * e + 1) * th] * 2
        if not mdl.learned_positions:
            kv = mdl.hidden * mdl.kv_heads // mdl.heads
            ops.append(2 * e * tokens * (mdl.hidden + kv) / t)
        return sum(self._mem(x) for x in ops)

    def layer(self, batch: int, recompute: str) -> OpTimes:
        """One layer's forward / input-gradient / weight-gradient seconds."""
        mdl, t = self.model, self.tp
        tokens = float(mdl.seq * batch)
        kv = mdl.hidden * mdl.kv_heads // mdl.heads
        shapes = [(tokens, (mdl.hidden + 2 * kv) / t, mdl.hidden),
                  (tokens, mdl.hidden, mdl.hidden / t),
                  (tokens, mdl.ffn * (2 if mdl.gated_mlp else 1) / t, mdl.hidden),
                  (tokens, mdl.hidden, mdl.ffn / t)]
        gemm = [self._gemms(*shape) for shape in shapes]
        core_f, core_b = self.attention_core(batch, recompute)
        mem = self.memory_bound(batch)
        comm = self.tp_layer_comm(batch)
        forward_compute = sum(x[0] for x in gemm) + core_f + mem
        input_compute = sum(x[1] for x in gemm) + core_b + 2 * mem
        weight = sum(x[2] for x in gemm)
        forward = forward_compute + comm
        backward_input = input_compute + comm
        tp_comm = 2 * comm
        if recompute == "full":
            backward_input += forward
            input_compute += forward_compute
            tp_comm += comm
        elif recompute == "selective" and self.recipe.flash_attention:
            again = self.memory_bound(batch, recomputed_only=True)
            backward_input += again
            input_compute += again
        return OpTimes(forward, backward_input, weight, tp_comm,
                       forward_compute + input_compute + weight)

    def head(self, batch: int) -> OpTimes:
        """The logit layer and its fp32 cross-entropy, on the last stage."""
        mdl, t = self.model, self.tp
        tokens = float(mdl.seq * batch)
        f, i, w = self._gemms(tokens, mdl.vocab / t, mdl.hidden)
        loss = self._mem(2 * 4 * tokens * mdl.vocab / t)
        comm = 0.0
        if self.recipe.sequence_parallel:
            comm = self._collective("all_gather", tokens * mdl.hidden * self.nbytes)
        return OpTimes(f + loss + comm, i + loss + comm, w, 2 * comm, f + i + w + 2 * loss)

    def embedding(self, batch: int) -> OpTimes:
        """The vocabulary-parallel embedding on the first stage: a gather, then an
        all-reduce (reduce-scatter under SP) of its b·s·h output."""
        mdl = self.model
        act = float(mdl.seq * batch * mdl.hidden * self.nbytes)
        name = "reduce_scatter" if self.recipe.sequence_parallel else "all_reduce"
        comm = self._collective(name, act)
        lookup = self._mem(2 * act / self.tp)
        return OpTimes(lookup + comm, lookup, 0.0, comm, 2 * lookup)


def stage_costs(costs: LayerCosts, batch: int, recompute: str,
                layout: PipelineLayout | Sequence[int]) -> tuple[list[OpTimes], OpTimes]:
    """Per-stage OpTimes of ``layout``'s stages (its layers, plus the embedding and the
    head where it puts them; a sequence of layer counts puts them on the first and last
    stage), and one layer's OpTimes."""
    if not isinstance(layout, PipelineLayout):
        layout = PipelineLayout.from_counts(layout)
    one = costs.layer(batch, recompute)
    out = []
    for stage in layout.stages:
        st = one.times(stage.layers)
        if stage.embedding:
            st = st + costs.embedding(batch)
        if stage.head:
            st = st + costs.head(batch)
        out.append(st)
    return out, one
