"""Inference cost: time to first token, time per output token and memory of a TP × PP layout.

**Decode** is priced per operator by a roofline (Williams et al. 2009; for transformer
inference Pope et al. 2022, "Efficiently Scaling Transformer Inference", section 2):
one decode step of b sequences at context T on one TP rank runs, per layer,

* four matmuls (QKV, attention output, MLP in, MLP out) of P_op/t weights each:
  max(weight bytes / (η·HBM), 2·b·P_op/t / peak);
* attention over the KV cache: max(2·b·T·kv_t·d·kv_bytes / (η·HBM), 4·b·T·(a/t)·d / peak);
* two all-reduces of b·h 16-bit activations over the TP group, latency-bound, priced by
  the α-β model of the kernels' step tables (:class:`~ringpipe.cost.CollectiveModel`);
* a fixed overhead τ per layer (kernel launches, norms, residual adds);

and the last stage the logit matmul (V·h/t weights). η (the achieved fraction of HBM
bandwidth) and τ are the two calibrated constants (below).

**Pipeline.** Stages hold :func:`~ringpipe.plan.layout.split_layers` of the layers; the
batch splits into G = min(p, b) groups kept in flight by the forward-only decode
schedule (:mod:`ringpipe.schedules.generators.decode`); the simulator, with one α-β
message per stage boundary (the token hand-back included), gives the steady-state time
per output token and, from the prefill schedule (its closed form, ``prefill_ttft``), the
time to first token.
**Prefill** is priced like a training forward (Narayanan et al., SC'21):
(2·b·L·P_mm + 4·b·L²·h)/t FLOPs per layer at the calibrated training fraction of peak,
or the weight read if that is longer, plus the two all-reduces of b·L·h activations.

**Throughput** counts every GPU-second a request costs: B·K output tokens over the
prefill of the B prompts plus K-1 decode steps (static batching, as TensorRT-LLM's
``gptSessionBenchmark``; in-flight batching interleaves the same work). Long prompts
make prefill, where TP all-reduces b·L·h activations per layer and PP sends them once
per stage, a large share; decode with PP re-reads each stage's weights once per group.

**Memory** per GPU: the stage's weights (2 bytes per parameter; fp8: 1 byte, matmuls at
twice the 16-bit peak as on Hopper, and an fp8 KV cache as TensorRT-LLM's ``--enable_fp8
--fp8_kv_cache``) plus the KV cache, 2 · layers_s · kv_t · d · bytes per token per
sequence (kv_t = kv_heads/t, at least 1), within 90% of HBM (vLLM's default).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from ringpipe.cost.hardware.cluster import GIB, Cluster
from ringpipe.cost.hardware.collectives import CollectiveModel
from ringpipe.cost.inference.workload import WEIGHT_BYTES, Workload, kv_cache_bytes
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.plan.layout import split_layers
from ringpipe.schedules.generators.decode import decode, inference_timing, prefill_ttft
from ringpipe.schedules.schedule import Schedule
from ringpipe.validation import check_real

ACT_BYTES = 2
#: Token steps of the decode schedule simulated for the steady-state time per token.
DECODE_STEPS = 3
MEMORY_UTILIZATION = 0.9
#: Calibrated on vLLM's measured Llama 3 latencies on A100, H100 and H200
#: (:mod:`ringpipe.cost.published.inference_tables`; NeMo's 2023 table gave 0.88 and 140 µs).
CALIBRATED_HBM_EFFICIENCY = 0.71
CALIBRATED_LAYER_OVERHEAD = 53.7e-6


@dataclass(frozen=True)
class InferenceCalibration:
    """η, the achieved fraction of HBM bandwidth, and τ, seconds of overhead per layer
    (checked here: every price divides by η)."""

    hbm_efficiency: float = CALIBRATED_HBM_EFFICIENCY
    layer_overhead: float = CALIBRATED_LAYER_OVERHEAD

    def __post_init__(self) -> None:
        check_real("InferenceCalibration.hbm_efficiency", self.hbm_efficiency, maximum=1.0,
                   positive=True)
        check_real("InferenceCalibration.layer_overhead", self.layer_overhead, 0.0)


@dataclass(frozen=True)
class InferencePrediction:
    """Predicted latencies (s), rates and memory (GiB per GPU) of one layout."""

    layout: Mesh
    ttft_s: float
    tpot_s: float
    tokens_per_s_per_user: float
    tokens_per_s_per_gpu: float
    weights_gib: float
    kv_cache_gib: float
    memory_gib: float
    max_batch: int
    fits: bool
    decode_breakdown_s: dict[str, float] = field(default_factory=dict)
    output_len: int = 1
    assumptions: Mapping[str, object] = field(default_factory=dict, compare=False)

    @property
    def latency_s(self) -> float:
        """End-to-end: TTFT + (K - 1) · TPOT."""
        return self.ttft_s + (self.output_len - 1) * self.tpot_s

    total_s = latency_s  # a request's end-to-end latency

    @property
    def breakdown_s(self) -> dict[str, float]:
        """``ttft`` and ``tpot``, then one decode step's parts (``decode_*``)."""
        return {"ttft": self.ttft_s, "tpot": self.tpot_s,
                **{f"decode_{k}": v for k, v in self.decode_breakdown_s.items()}}

    @property
    def memory_bytes(self) -> dict[str, float]:
        """Weights, KV cache and their total on the fullest GPU, bytes."""
        return {"weights": self.weights_gib * GIB, "kv_cache": self.kv_cache_gib * GIB,
                "total": self.memory_gib * GIB}


def _check_layout(model: ModelConfig, cluster: Cluster, layout: Mesh) -> None:
    if model.heads % layout.tp or (model.kv_heads % layout.tp and layout.tp % model.kv_heads):
        raise ValueError(f"tp={layout.tp} does not split heads={model.heads}, "
                         f"kv_heads={model.kv_heads}")
    if layout.pp > model.layers:
        raise ValueError(f"pp={layout.pp} exceeds the model's {model.layers} layers")
    if layout.world > cluster.world:
        raise ValueError(f"layout needs {layout.world} GPUs, the cluster has {cluster.world}")


class InferenceModel:
    """Prices layouts of ``model`` on ``cluster`` (memoises collective costs)."""

    def __init__(self, model: ModelConfig, cluster: Cluster,
                 calibration: InferenceCalibration | None = None) -> None:
        self.model, self.cluster = model, cluster
        self.calibration = InferenceCalibration() if calibration is None else calibration
        self._collectives = CollectiveModel(cluster)
        self._schedules: dict[tuple[int, int], Schedule] = {}

    def recalibrated(self, calibration: InferenceCalibration) -> InferenceModel:
        """The same model and cluster under ``calibration``, sharing the memoised
        collective costs (they do not depend on η or τ)."""
        other = InferenceModel(self.model, self.cluster, calibration)
        other._collectives = self._collectives
        other._schedules = self._schedules
        return other

    def _decode_schedule(self, pp: int, groups: int) -> Schedule:
        """The decode schedule of one shape, built (and validated) once per model: a
        search prices thousands of (layout, batch) points on a few shapes."""
        key = (pp, groups)
        if key not in self._schedules:
            self._schedules[key] = decode(pp, groups, DECODE_STEPS)
        return self._schedules[key]

    def allreduce_s(self, nbytes: float, tp: int) -> float:
        """One all-reduce of ``nbytes`` over ``tp`` GPUs (the best step table's α-β time)."""
        return self._allreduce(nbytes, tp)

    def _allreduce(self, nbytes: float, tp: int) -> float:
        return self._collectives.best("all_reduce", nbytes, tp).time if tp > 1 else 0.0

    def _roofline(self, nbytes: float, flops: float, dtype: str) -> float:
        c = self.cluster
        peak = c.achievable_flops * (2 if dtype == "fp8" else 1)
        return max(nbytes / (self.calibration.hbm_efficiency * c.memory_bandwidth),
                   flops / peak)

    def _ops(self, tp: int) -> list[float]:
        m, h = self.model, self.model.hidden
        kv_width = h * m.kv_heads // m.heads
        mlp_in = (2 if m.gated_mlp else 1) * h * m.ffn
        return [h * (h + 2 * kv_width) / tp, h * h / tp, mlp_in / tp, h * m.ffn / tp]

    def decode_stage(self, layers: int, last: bool, batch: int, context: float, tp: int,
                     dtype: str) -> dict[str, float]:
        """One decode step of ``batch`` sequences through a stage: seconds per part."""
        m, wb = self.model, WEIGHT_BYTES[dtype]
        d = m.hidden // m.heads
        kv_here = max(m.kv_heads // tp, 1)
        matmul = sum(self._roofline(p * wb + 2 * batch * ACT_BYTES * m.hidden, 2 * batch * p,
                                    dtype) for p in self._ops(tp))
        attn = self._roofline(2 * batch * context * kv_here * d * wb,
                              4 * batch * context * (m.heads // tp) * d, "bf16")
        parts = {"matmul": layers * matmul, "attention": layers * attn,
                 "allreduce": layers * 2 * self._allreduce(batch * m.hidden * ACT_BYTES, tp),
                 "overhead": layers * self.calibration.layer_overhead}
        head = m.vocab * m.hidden / tp
        parts["logits"] = self._roofline(head * wb, 2 * batch * head, dtype) if last else 0.0
        return parts

    def forward_stage(self, layers: int, last: bool, tokens: int, attended: float,
                      cached: float, emitting: int, tp: int, dtype: str,
                      allreduce_s: float | None = None) -> float:
        """One forward of ``tokens`` new positions through a stage, priced like a training
        forward: (2·N·P_mm + 4·A·h)/t FLOPs per layer at the calibrated fraction of peak,
        or the weight read plus the ``cached`` positions' KV read if that is longer, plus
        two all-reduces of N·h activations, τ per layer and the head on ``emitting``
        rows. A = Σ n·(start + n) query-key pairs over the segments (the causal square
        counted whole, as Narayanan et al. count a forward); for b prompts of L tokens,
        N = b·L and A = b·L² (:meth:`prefill_stage`). ``allreduce_s``: one all-reduce's
        time if the caller has it (default: priced here)."""
        m, c = self.model, self.cluster
        d, kv_here = m.hidden // m.heads, max(m.kv_heads // tp, 1)
        flops = layers * (2.0 * tokens * m.matmul_params_per_layer + 4.0 * attended * m.hidden) / tp
        peak = c.achievable_flops * (2 if dtype == "fp8" else 1)
        weights = layers * sum(self._ops(tp)) * WEIGHT_BYTES[dtype]
        kv = layers * 2.0 * cached * kv_here * d * WEIGHT_BYTES[dtype]
        compute = max(flops / peak,
                      (weights + kv) / (self.calibration.hbm_efficiency * c.memory_bandwidth))
        if allreduce_s is None:
            allreduce_s = self._allreduce(tokens * m.hidden * ACT_BYTES, tp)
        comm = layers * 2 * allreduce_s
        logits = self._roofline(m.vocab * m.hidden / tp * WEIGHT_BYTES[dtype],
                                2 * emitting * m.vocab * m.hidden / tp, dtype) if last else 0.0
        return compute + comm + layers * self.calibration.layer_overhead + logits

    def prefill_stage(self, layers: int, last: bool, batch: int, prompt: int, tp: int,
                      dtype: str) -> float:
        """The prompt's forward through a stage: training-forward FLOPs or weight read."""
        return self.forward_stage(layers, last, batch * prompt, batch * prompt * prompt, 0,
                                  batch, tp, dtype)

    def _crosses_nodes(self, layout: Mesh) -> bool:
        """Whether a stage-to-stage hop (the token hand-back included) leaves a node."""
        c, tp, pp = self.cluster, layout.tp, layout.pp
        return any(c.node_of(r * tp) != c.node_of(((r + 1) % pp) * tp) for r in range(pp))

    def p2p_s(self, nbytes: float, layout: Mesh) -> float:
        """One message of ``nbytes`` between neighbouring stages of ``layout`` (0 for pp = 1)."""
        if layout.pp == 1:
            return 0.0
        link = self.cluster.inter if self._crosses_nodes(layout) else self.cluster.intra
        return link.time(nbytes)

    def _prefill(self, per_stage: tuple[int, ...], b: int, work: Workload,
                 layout: Mesh) -> float:
        """Makespan of the b prompts' prefill, over micro-batch counts G = p·2^k <= b:
        the prefill schedule's time to first token in closed form
        (:func:`~ringpipe.schedules.generators.decode.prefill_ttft`, equal to simulating
        it), so pricing a batch of 2^20 prompts builds no 2^20-group schedule."""
        pp, tp, best = layout.pp, layout.tp, math.inf
        counts = sorted({min(b, pp * 2**k) for k in range(8)})
        for groups in counts:
            gb = math.ceil(b / groups)
            cost = [self.prefill_stage(n, r == pp - 1, gb, work.prompt_len, tp, work.dtype)
                    for r, n in enumerate(per_stage)]
            hop = self.p2p_s(gb * work.prompt_len * self.model.hidden * ACT_BYTES, layout)
            best = min(best, prefill_ttft(cost, hop, groups))
        return best

    def predict(self, layout: Mesh, work: Workload) -> InferencePrediction:
        """TTFT, TPOT, rates and memory of ``layout`` running ``work`` (TypeError for
        anything but a :class:`Mesh` and a :class:`Workload`, e.g. a bare tuple)."""
        if not isinstance(layout, Mesh):
            raise TypeError(f"InferenceModel.predict: layout must be a ringpipe.Mesh, "
                            f"got {type(layout).__name__}")
        if not isinstance(work, Workload):
            raise TypeError(f"InferenceModel.predict: work must be a Workload, got "
                            f"{type(work).__name__}")
        m, c, tp, pp = self.model, self.cluster, layout.tp, layout.pp
        _check_layout(m, c, layout)
        per_stage = split_layers(m.layers, pp)
        b = math.ceil(work.batch / layout.dp)  # the largest replica's share (ceil/floor split)
        groups = min(pp, b)
        gb = math.ceil(b / groups)
        context = work.prompt_len + work.output_len / 2
        dec = [self.decode_stage(n, r == pp - 1, gb, context, tp, work.dtype)
               for r, n in enumerate(per_stage)]
        step = [sum(parts.values()) for parts in dec]
        hop = self.p2p_s(gb * m.hidden * ACT_BYTES, layout)
        steady = inference_timing(self._decode_schedule(pp, groups), step, step, hop)
        tpot = float(steady.token_latency[:, -1].max())
        ttft = self._prefill(per_stage, b, work, layout)
        wb = WEIGHT_BYTES[work.dtype]
        stage_w = [n * m.params_per_layer / tp for n in per_stage]
        stage_w[0] += m.embedding_params / tp
        stage_w[-1] += m.output_params / tp
        weights = max(stage_w) * wb
        kv_seq = kv_cache_bytes(m, work.prompt_len + work.output_len, 1, tp, max(per_stage),
                                work.dtype)
        usable = MEMORY_UTILIZATION * c.memory_bytes
        max_batch = max(int((usable - weights) // kv_seq), 0) * layout.dp
        memory = weights + kv_seq * b
        busy = ttft + (work.output_len - 1) * tpot
        breakdown = {k: sum(parts[k] for parts in dec) for k in dec[0]}
        breakdown["p2p"] = pp * hop
        return InferencePrediction(
            layout, ttft, tpot, 1.0 / tpot,
            # the real B·K tokens: replicas with floor(B/dp) or no sequences still hold GPUs
            work.batch * work.output_len / (busy * layout.world),
            weights / GIB, kv_seq * b / GIB, memory / GIB, max_batch,
            memory <= usable, breakdown, work.output_len,
            {"prompt_len": work.prompt_len, "output_len": work.output_len,
             "batch": work.batch, "dtype": work.dtype, "groups_in_flight": groups,
             "tp_link": "inter-node" if tp > c.gpus_per_node else "intra-node",
             "pp_link": "inter-node" if self._crosses_nodes(layout) else "intra-node",
             "hbm_efficiency": self.calibration.hbm_efficiency,
             "layer_overhead_s": self.calibration.layer_overhead,
             "memory_utilization": MEMORY_UTILIZATION})
