"""One transformer layer as its operators: seconds per micro-batch on one TP rank.

Shapes after the TP (and SP) split, for a micro-batch of b sequences of length s
(T = b·s / cp tokens on one rank: context parallelism splits the sequence), hidden h,
heads a, KV heads g, head dim d (h/a unless the model says), FFN width f, TP t:

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

**Context parallelism** (cp > 1): every operator above sees T = b·s/cp tokens and the
causal attention core 1/cp of the sequence's work (the load-balanced chunks), and the
ring attention's K/V exchange is overlapped with each block's attention; what stays
exposed is priced by :mod:`ringpipe.cost.training.parallel.context`. **MoE layers** replace the
MLP by the routed experts of :mod:`ringpipe.cost.training.parallel.experts` (its TP
communication too, unless shared experts keep a TP-split MLP). **FP8**
(:mod:`ringpipe.cost.training.parallel.fp8`): the linear GEMMs run at the FP8 rate on 1-byte
operands, and each pays the casts of its inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ringpipe.cost.hardware.cluster import Cluster
from ringpipe.cost.hardware.collectives import CollectiveModel
from ringpipe.cost.training.optimes import OpTimes
from ringpipe.cost.training.parallel.context import cp_exposed
from ringpipe.cost.training.parallel.experts import moe_layer
from ringpipe.cost.training.parallel.fp8 import CAST_BYTES, gemm_rate
from ringpipe.cost.training.parallel.groups import MeshGroups
from ringpipe.cost.training.recipe import Recipe
from ringpipe.model.config import ModelConfig
from ringpipe.plan.layout import PipelineLayout

__all__ = ["LayerCosts", "OpTimes", "stage_costs"]


@dataclass(frozen=True)
class LayerCosts:
    """Operator costs of one configuration's layers on one TP rank (module docstring).
    ``cp``: context-parallel size; ``groups``: where the configuration's groups sit
    (:class:`~ringpipe.cost.training.parallel.groups.MeshGroups`; needed for cp > 1 and MoE);
    ``fp8``: the FP8 recipe; ``imbalance``: the MoE load-imbalance factor."""

    model: ModelConfig
    cluster: Cluster
    recipe: Recipe
    tp_group: tuple[int, ...]
    comms: CollectiveModel
    nbytes: int = 2
    cp: int = 1
    groups: MeshGroups | None = None
    fp8: bool = False
    imbalance: float = 1.0
    etp: int | None = None

    @property
    def tp(self) -> int:
        """TP size."""
        return len(self.tp_group)

    def tokens(self, batch: int) -> float:
        """Token positions one rank holds per micro-batch: b·s / cp."""
        return float(self.model.seq * batch) / self.cp

    def _gemms(self, m: float, n: float, k: float, *, fp8: bool = False,
               batch: int = 1, efficiency: float = 1.0) -> tuple[float, float, float]:
        g, c = self.cluster.kernels, self.cluster
        rate, hbm = gemm_rate(c, fp8) * efficiency, c.memory_bandwidth
        e = 1 if fp8 else 2
        return (g.gemm_time(m, n, k, rate, hbm, batch, e),
                g.gemm_time(m, k, n, rate, hbm, batch, e),
                g.gemm_time(k, n, m, rate, hbm, batch, e))

    def _mem(self, nbytes: float) -> float:
        return self.cluster.kernels.memory_time(nbytes, self.cluster.memory_bandwidth)

    def _collective(self, name: str, nbytes: float) -> float:
        if self.tp == 1:
            return 0.0
        return self.comms.best(name, nbytes, self.tp_group).time

    def tp_layer_comm(self, batch: int, sub_blocks: int = 2) -> float:
        """TP communication of one layer's forward (half of forward + backward), for its
        ``sub_blocks`` TP-split sub-blocks (attention, MLP)."""
        act = float(self.tokens(batch) * self.model.hidden * self.nbytes)
        if self.recipe.sequence_parallel:
            return sub_blocks * (self._collective("all_gather", act)
                                 + self._collective("reduce_scatter", act))
        return sub_blocks * self._collective("all_reduce", act)

    def attention_core(self, batch: int, recompute: str) -> tuple[float, float]:
        """(forward, backward) seconds of the attention core on one TP rank (1/cp of the
        causal work under context parallelism)."""
        mdl, c, t = self.model, self.cluster, self.tp
        s, heads = mdl.seq, batch * mdl.heads // t
        if self.recipe.flash_attention:
            fwd_flops = 0.5 * 4.0 * batch * s * s * mdl.attn_width / t / self.cp  # causal
            rate = c.peak_flops * c.kernels.flash_fraction
            fwd = max(fwd_flops / rate, c.kernels.launch_overhead)
            return fwd, 2.5 * fwd
        g, rate, hbm = c.kernels, c.achievable_flops, c.memory_bandwidth
        d = mdl.head_dim
        q = s / self.cp  # this rank's queries against the whole sequence's keys
        qk = g.gemm_time(q, s, d, rate, hbm, batch=heads)
        av = g.gemm_time(q, d, s, rate, hbm, batch=heads)
        scores = float(heads * q * s)
        drop = mdl.dropout
        fwd = qk + av + self._mem(4 * scores) + (self._mem(5 * scores) if drop else 0.0)
        bwd = 2 * qk + 2 * av + self._mem(6 * scores) + (self._mem(5 * scores) if drop
                                                          else 0.0)
        if recompute == "selective":
            bwd += fwd
        return fwd, bwd

    def memory_bound(self, batch: int, recomputed_only: bool = False,
                     mlp: bool = True) -> float:
        """Forward seconds of the layer's memory-bound operators (module docstring);
        ``recomputed_only``: just the norms and the MLP activation; ``mlp`` False: a MoE
        layer, whose activation is the experts'."""
        mdl, t, e = self.model, self.tp, self.nbytes
        tokens = self.tokens(batch)
        rep = 1.0 / t if self.recipe.sequence_parallel else 1.0
        th = tokens * mdl.hidden * rep
        act = (3 if mdl.gated_mlp else 2) * e * tokens * mdl.ffn / t if mlp else 0.0
        if recomputed_only:
            return sum(self._mem(x) for x in (2 * e * th, 2 * e * th, act))
        ops = [2 * e * th, 2 * e * th, 3 * e * th, 3 * e * th, act]
        if mdl.dropout:
            ops += [(2 * e + 1) * th] * 2
        if not mdl.learned_positions:
            kv = mdl.head_dim * mdl.kv_heads
            ops.append(2 * e * tokens * (mdl.attn_width + kv) / t)
        return sum(self._mem(x) for x in ops)

    def _casts(self, shapes: list[tuple[float, float, float]]) -> tuple[float, float]:
        """(forward, backward) seconds of the FP8 casts of these GEMMs' inputs."""
        if not self.fp8:
            return 0.0, 0.0
        fwd = sum(self._mem(CAST_BYTES * m * k) for m, _, k in shapes)
        bwd = sum(self._mem(CAST_BYTES * m * n) + self._mem(m * k) for m, n, k in shapes)
        return fwd, bwd

    def layer(self, batch: int, recompute: str, moe: bool = False) -> OpTimes:
        """One layer's forward / input-gradient / weight-gradient seconds (a MoE layer's
        with ``moe``)."""
        mdl, t = self.model, self.tp
        tokens = self.tokens(batch)
        kv = mdl.head_dim * mdl.kv_heads
        shapes = [(tokens, (mdl.attn_width + 2 * kv) / t, mdl.hidden),
                  (tokens, mdl.hidden, mdl.attn_width / t)]
        if not moe:
            shapes += [(tokens, mdl.ffn * (2 if mdl.gated_mlp else 1) / t, mdl.hidden),
                       (tokens, mdl.hidden, mdl.ffn / t)]
        gemm = [self._gemms(*shape, fp8=self.fp8) for shape in shapes]
        core_f, core_b = self.attention_core(batch, recompute)
        ring_f, ring_b = cp_exposed(self, batch, core_f, core_b) if self.cp > 1 else (0, 0)
        mem = self.memory_bound(batch, mlp=not moe)
        sub_blocks = 2 if not moe or mdl.shared_experts else 1
        comm = self.tp_layer_comm(batch, sub_blocks)
        cast_f, cast_b = self._casts(shapes)
        forward_compute = sum(x[0] for x in gemm) + core_f + mem + cast_f
        input_compute = sum(x[1] for x in gemm) + core_b + 2 * mem + cast_b
        weight = sum(x[2] for x in gemm)
        forward = forward_compute + comm + ring_f
        backward_input = input_compute + comm + ring_b
        tp_comm = 2 * comm
        cp_comm = ring_f + ring_b
        if recompute == "full":
            backward_input += forward
            input_compute += forward_compute
            tp_comm += comm
            cp_comm += ring_f
        elif recompute == "selective" and self.recipe.flash_attention:
            again = self.memory_bound(batch, recomputed_only=True, mlp=not moe)
            backward_input += again
            input_compute += again
        own = OpTimes(forward, backward_input, weight, tp_comm, cp_comm,
                      compute=forward_compute + input_compute + weight)
        return own + moe_layer(self, batch, recompute) if moe else own

    def head(self, batch: int) -> OpTimes:
        """The logit layer and its fp32 cross-entropy, on the last stage."""
        mdl, t = self.model, self.tp
        tokens = self.tokens(batch)
        f, i, w = self._gemms(tokens, mdl.vocab / t, mdl.hidden)
        loss = self._mem(2 * 4 * tokens * mdl.vocab / t)
        comm = 0.0
        if self.recipe.sequence_parallel:
            comm = self._collective("all_gather", tokens * mdl.hidden * self.nbytes)
        return OpTimes(f + loss + comm, i + loss + comm, w, 2 * comm,
                       compute=f + i + w + 2 * loss)

    def embedding(self, batch: int) -> OpTimes:
        """The vocabulary-parallel embedding on the first stage: a gather, then an
        all-reduce (reduce-scatter under SP) of its b·s·h output."""
        mdl = self.model
        act = float(self.tokens(batch) * mdl.hidden * self.nbytes)
        name = "reduce_scatter" if self.recipe.sequence_parallel else "all_reduce"
        comm = self._collective(name, act)
        lookup = self._mem(2 * act / self.tp)
        return OpTimes(lookup + comm, lookup, 0.0, comm, compute=2 * lookup)


def stage_costs(costs: LayerCosts, batch: int, recompute: str,
                layout: PipelineLayout | Sequence[int]) -> tuple[list[OpTimes], OpTimes]:
    """Per-stage OpTimes of ``layout``'s stages (its layers, plus the embedding and the
    head where it puts them; a sequence of layer counts puts them on the first and last
    stage; a MoE model's layers from ``dense_layers`` on are MoE layers), and one (dense)
    layer's OpTimes."""
    if not isinstance(layout, PipelineLayout):
        layout = PipelineLayout.from_counts(layout)
    one = costs.layer(batch, recompute)
    moe = costs.layer(batch, recompute, moe=True) if costs.model.is_moe else one
    out, first = [], 0
    for stage in layout.stages:
        n = stage.layers
        sparse = sum(costs.model.is_moe_layer(i) for i in range(first, first + n))
        first += n
        st = one.scaled(n) if not sparse else one.scaled(n - sparse) + moe.scaled(sparse)
        if stage.embedding:
            st = st + costs.embedding(batch)
        if stage.head:
            st = st + costs.head(batch)
        out.append(st)
    return out, one
