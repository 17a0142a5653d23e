"""A MoE layer's experts on one rank, priced: router, dispatch and combine, grouped GEMMs.

Megatron-core's MoE layer with the all-to-all token dispatcher (Megatron-core MoE
documentation; the executable form is :mod:`ringpipe.model.moe.block`), for a micro-batch
of T = b·s/cp tokens per TP group, top-k routing over E experts, expert width f_e,
EP size ep and expert-TP size etp (:mod:`ringpipe.mesh`), per rank:

* Megatron requires sequence parallelism with MoE and TP, so each TP rank routes its own
  T/t tokens: the router's GEMM (T/t × E × h) and its softmax / top-k (fp32, memory
  bound), and n = k·T/t rows to dispatch;
* **permute / unpermute** (memory bound): gather the n rows in expert order and scatter
  them back, reading and writing (T/t + n) · h 16-bit values each way;
* **dispatch and combine all-to-alls** over the EP group, n·h·2 bytes per rank each
  ((ep-1)/ep of it leaves the rank), two in the forward and two in the backward, at the
  link the EP group crosses (priced on the pairwise step table,
  :func:`ringpipe.kernels.exchange.pairwise_all_to_all`, by the collective model: inside
  a node at NVLink, across nodes at the NIC share). They are on the critical path
  (Megatron overlaps them only with its optional A2A-overlap schedules);
* with etp > 1, the rows an EP rank receives are all-gathered over its expert-TP group
  before the experts and reduce-scattered after;
* **experts**: each rank holds E/ep experts and receives, on the busiest rank, λ · n ·
  etp rows (λ the load-imbalance factor, ``TrainingSpec.moe_imbalance``: the most
  loaded EP rank's rows over the mean), m = λ·n·etp·ep/E per expert: a grouped GEMM of
  E/ep problems m × 2f_e/etp × h (gate and up) and m × h × f_e/etp (down), each priced
  at its own shape with the waves of the whole group
  (:meth:`~ringpipe.cost.hardware.gpu.GpuKernels.gemm_time` with ``batch``) and the
  GPU's ``grouped_gemm_efficiency``; the SwiGLU activation in between (memory bound);
* **shared experts** (DeepSeek-V3): a TP-split SwiGLU of width S·f_e on the T tokens,
  as a dense MLP (its TP communication is the layer's second sub-block,
  :meth:`~ringpipe.cost.training.operators.LayerCosts.layer`).

Backward: the dgrad GEMMs, the activation and permutes again, the reverse
all-to-alls; the wgrad GEMMs go to the W pass. Full recomputation repeats the forward.
FP8 runs the expert and shared GEMMs at the FP8 rate and casts their inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ringpipe.cost.training.optimes import OpTimes
from ringpipe.cost.training.parallel.fp8 import CAST_BYTES
from ringpipe.cost.training.recipe import Recipe
from ringpipe.model.config import ModelConfig

if TYPE_CHECKING:
    from ringpipe.cost.training.operators import LayerCosts

__all__ = ["MoeShape", "dispatched_rows", "expert_rows", "moe_layer"]


@dataclass(frozen=True)
class MoeShape:
    """How a configuration runs its MoE layers: the expert-TP size and the
    load-imbalance factor λ (module docstring)."""

    etp: int
    imbalance: float = 1.0

    def activation_bytes(self, model: ModelConfig, batch: int, tp: int, cp: int,
                         recompute: str, recipe: Recipe, fp8: bool) -> float:
        """Bytes a MoE layer's expert part keeps for the backward on the busiest rank,
        beyond the attention's: the dispatched rows (an FP8 copy with ``fp8``), the
        gate and up outputs and the activation (recomputed under selective
        recomputation with flash attention), the expert outputs back at the source (the
        combine's weight gradient reads them), the router's fp32 probabilities and the
        top-k indices; the shared experts as a TP-split SwiGLU."""
        e, linear_in = 2.0, (1.0 if fp8 else 2.0)
        tokens = model.seq * batch / cp / tp            # each TP rank's SP slice
        n = model.top_k * tokens
        rows = self.imbalance * n * self.etp
        fe = model.moe_ffn / self.etp  # type: ignore[operator]
        act = 0.0 if recompute == "selective" and recipe.flash_attention else rows * fe
        out = rows * model.hidden * linear_in + rows * 2 * fe * e + act * linear_in
        out += n * model.hidden * e + 4.0 * tokens * model.experts + 8.0 * n
        if model.shared_experts:
            width = model.shared_experts * model.moe_ffn / tp  # type: ignore[operator]
            out += tokens * tp * width * (2 * e + linear_in)
        return out

    def weight_pass_bytes(self, model: ModelConfig, batch: int, tp: int, cp: int,
                          recipe: Recipe) -> float:
        """Bytes the expert part keeps from its input-gradient pass to its weight-gradient
        pass on the busiest rank (zero-bubble schedules): the router's input, the experts'
        fc1 and fc2 inputs and output gradients, and the shared experts' as a TP-split
        SwiGLU, 16-bit."""
        tokens = model.seq * batch / cp / tp
        rows = self.imbalance * model.top_k * tokens * self.etp
        h, fe = model.hidden, model.moe_ffn / self.etp  # type: ignore[operator]
        out = tokens * h + rows * (h + fe) + rows * (2 * fe + h)
        if model.shared_experts:
            width = model.shared_experts * model.moe_ffn / tp  # type: ignore[operator]
            rep = 1.0 if recipe.sequence_parallel else tp
            out += tokens * tp * (rep * h / tp * 2 + 3 * width)
        return 2.0 * out


def dispatched_rows(costs: LayerCosts, batch: int) -> float:
    """n = k · T/t: the rows one rank sends to the experts per micro-batch."""
    return costs.model.top_k * costs.tokens(batch) / costs.tp


def expert_rows(costs: LayerCosts, batch: int) -> float:
    """Rows the busiest rank's experts process: λ · n · etp (module docstring)."""
    etp = costs.etp or costs.tp
    return costs.imbalance * dispatched_rows(costs, batch) * etp


def _group(costs: LayerCosts, axis: str) -> tuple[tuple[int, ...], int | None]:
    if costs.groups is None:
        raise ValueError("MoE layers need the configuration's groups (LayerCosts.groups)")
    return costs.groups.groups[axis], costs.groups.crossers[axis] or None


def _all_to_all(costs: LayerCosts, nbytes: float) -> float:
    group, concurrent = _group(costs, "ep")
    if len(group) == 1:
        return 0.0
    return costs.comms.best("all_to_all", len(group) * nbytes, group, concurrent).time


def _etp_comm(costs: LayerCosts, nbytes: float) -> float:
    """All-gather + reduce-scatter of the received rows over the expert-TP group."""
    group, concurrent = _group(costs, "etp")
    if len(group) == 1:
        return 0.0
    return sum(costs.comms.best(name, nbytes, group, concurrent).time
               for name in ("all_gather", "reduce_scatter"))


def moe_layer(costs: LayerCosts, batch: int, recompute: str) -> OpTimes:
    """A MoE layer's expert part on the busiest rank (module docstring)."""
    mdl, e = costs.model, costs.nbytes
    h, experts, fe = mdl.hidden, mdl.experts, mdl.moe_ffn
    etp = costs.etp or costs.tp
    ep = len(_group(costs, "ep")[0])
    local = experts // ep
    tokens = costs.tokens(batch) / costs.tp
    n = dispatched_rows(costs, batch)
    rows = expert_rows(costs, batch)
    per_expert = rows / local
    eff = costs.cluster.kernels.grouped_gemm_efficiency
    router = costs._gemms(tokens, experts, h)
    router_mem = costs._mem(3 * 4.0 * tokens * experts)
    permute = 2 * costs._mem(e * h * (tokens + n))
    a2a = _all_to_all(costs, costs.imbalance * n * h * e)
    etp_comm = _etp_comm(costs, rows * h * e)
    shapes = [(per_expert, 2 * fe / etp, h), (per_expert, h, fe / etp)]  # type: ignore[operator]
    grouped = [costs._gemms(*s, fp8=costs.fp8, batch=local, efficiency=eff) for s in shapes]
    act = costs._mem(3 * e * rows * fe / etp)  # type: ignore[operator]
    if mdl.shared_experts:
        width = mdl.shared_experts * fe  # type: ignore[operator]
        all_tokens = costs.tokens(batch)
        shared_shapes = [(all_tokens, 2 * width / costs.tp, h),
                         (all_tokens, h, width / costs.tp)]
        shapes += shared_shapes
        grouped += [costs._gemms(*s, fp8=costs.fp8) for s in shared_shapes]
        act += costs._mem(3 * e * all_tokens * width / costs.tp)
    cast_f = sum(costs._mem(CAST_BYTES * m * k) for m, _, k in shapes) if costs.fp8 else 0.0
    cast_b = sum(costs._mem(CAST_BYTES * m * nn) + costs._mem(m * k)
                 for m, nn, k in shapes) if costs.fp8 else 0.0
    comm = 2 * a2a + etp_comm
    forward_compute = router[0] + router_mem + permute + sum(g[0] for g in grouped) + act \
        + cast_f
    input_compute = router[1] + router_mem + permute + sum(g[1] for g in grouped) \
        + 2 * act + cast_b
    weight = router[2] + sum(g[2] for g in grouped)
    forward, backward_input = forward_compute + comm, input_compute + comm
    ep_comm = 2 * comm
    if recompute == "full":
        backward_input += forward
        input_compute += forward_compute
        ep_comm += comm
    return OpTimes(forward, backward_input, weight, 0.0, 0.0, ep_comm,
                   compute=forward_compute + input_compute + weight)
