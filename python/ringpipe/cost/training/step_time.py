"""Step time and memory per GPU of one configuration: the layout ``Plan`` runs, priced.

The layout is the one :class:`ringpipe.Plan` executes: the same mesh
(:class:`ringpipe.mesh.Mesh`, tp fastest), the same stages (a
:class:`~ringpipe.plan.layout.PipelineLayout`: even, balanced by
:mod:`ringpipe.plan.balance` with this model's own per-stage seconds and memory, or
given), the same chunks per rank (:func:`ringpipe.schedules.resolve_chunks`) and the
same schedule generator, run through the schedule simulator (:mod:`.pipeline`).

Per stage and micro-batch the forward, input-gradient and weight-gradient seconds are
the stage's layers priced operator by operator (:mod:`.operators`), plus the embedding
on the stage that holds it and the logit layer and loss on the one that holds the head:
a cost vector per stage, which the simulator times. Its makespan includes the bubble
and the pipeline messages (overlapped with compute, as Megatron's isend/irecv are): one
b·s·h message per micro-batch and stage boundary each way, each TP rank sending its 1/t
slice (sequence-parallel shard, or Megatron's scatter/gather optimisation followed by an
all-gather in the node without SP), across nodes at the NIC share of the GPUs of a node
that cross at once. Memory per rank: each stage's own (:mod:`.stages`) at the peak.

**Data parallelism** (on the links the DP group spans, every GPU of a node crossing at
once): gradients all-reduced (fp32 for bf16 with ``fp32_grads``), or with the
distributed optimizer reduce-scattered and the bf16 weights all-gathered. With
``overlap_grad_reduce`` Megatron launches each bucket's reduction (buckets of
max(40M, 1M·dp) parameters) as soon as the last micro-batch's backward has produced it,
and gathers weights during the next forward, so only max(t_comm − t_window, t_comm /
buckets) is exposed, the window being the first pipeline rank's backward (forward for
the gather) of one micro-batch. Without it, the whole reduction follows the drain.

**Optimizer step**: Adam reads master weights, both moments and the gradient, writes the
first three and the 16-bit weights: 26 + gradient bytes per owned parameter (1/dp with
the distributed optimizer), at HBM bandwidth.

**CP, EP, FP8** (:mod:`.parallel`): ring K/V exchange and MoE all-to-alls are in the
stage costs; dense gradients reduce over DP × CP, expert ones over EDP; FP8 adds the
weights' casts once per step. Memory: :mod:`.rank_memory`.

Step time = makespan + exposed DP communication + optimizer step (+ FP8 weight casts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ringpipe.cost.hardware.cluster import Cluster
from ringpipe.cost.hardware.collectives import CollectiveModel
from ringpipe.cost.training.memory import MemoryBreakdown, state_bytes_per_param
from ringpipe.cost.training.operators import LayerCosts, stage_costs
from ringpipe.cost.training.parallel.fp8 import WEIGHT_CAST_BYTES, check_fp8
from ringpipe.cost.training.parallel.groups import MeshGroups, mesh_groups
from ringpipe.cost.training.pipeline.simulator import PipelineSimulator, StageCosts
from ringpipe.cost.training.pipeline.split import balanced_layout, buffer_bytes
from ringpipe.cost.training.pipeline.stages import StageLayout
from ringpipe.cost.training.pipeline.synth import synth_layout
from ringpipe.cost.training.prediction import Config, StepPrediction
from ringpipe.cost.training.rank_memory import rank_memory, rank_param_split
from ringpipe.cost.training.spec import TrainingSpec, executed_flops
from ringpipe.model.config import ModelConfig
from ringpipe.plan.layout import PipelineLayout
from ringpipe.schedules.registry import SYNTH
from ringpipe.validation import check_real

#: Megatron's DDP bucket: max(40M, 1M · dp) parameters (``DistributedDataParallelConfig``).
BUCKET_PARAMS = 40_000_000


def _check_fits_cluster(config: Config, cluster: Cluster, training: TrainingSpec) -> int:
    if config.world != cluster.world:
        raise ValueError(f"Config: tp·pp·dp = {config.world} but the cluster has "
                         f"{cluster.world} GPUs")
    per_replica, rest = divmod(training.global_batch, config.dp * config.microbatch_size)
    if rest:
        raise ValueError(f"global_batch ({training.global_batch}) is not a multiple of "
                         f"dp·microbatch_size ({config.dp}·{config.microbatch_size})")
    return per_replica


@dataclass(frozen=True)
class StepModel:
    """Prices configurations of one (model, training, cluster); reuse it across a search
    (it memoises schedules and collective profiles). ``headroom``: bytes a fitting
    configuration must leave free; ``placement``: which GPU each mesh rank runs on
    (:mod:`ringpipe.cost.training.parallel.groups`: ringpipe's order, or Megatron-core's)."""

    model: ModelConfig
    training: TrainingSpec
    cluster: Cluster
    headroom: float = 0.0
    sim: PipelineSimulator | None = None
    comms: CollectiveModel | None = None
    placement: str = "ringpipe"
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, kind in (("model", ModelConfig), ("training", TrainingSpec),
                           ("cluster", Cluster)):
            if not isinstance(getattr(self, name), kind):
                raise TypeError(f"StepModel.{name} must be a {kind.__name__}, "
                                f"got {type(getattr(self, name)).__name__}")
        check_real("headroom (bytes)", self.headroom, 0.0)
        if self.sim is None:
            object.__setattr__(self, "sim", PipelineSimulator())
        if self.comms is None:
            object.__setattr__(self, "comms", CollectiveModel(self.cluster))

    def layout(self, config: Config) -> StageLayout:
        """The stage layout ``Plan`` would run for ``config``: its explicit layout, or the
        even or balanced split (:meth:`balanced`)."""
        m = _check_fits_cluster(config, self.cluster, self.training)
        key = ("layout", config, m)
        if key not in self._memo and config.schedule == SYNTH:
            self._memo[key] = synth_layout(self, config, m)
        if key not in self._memo:
            placement = self.sim.placement(config.schedule, config.pp, m, config.chunks)
            layers, stages = self.model.layers, len(placement)
            if config.layout is not None:
                chosen = config.layout.check(layers, stages)
            elif config.split == "balanced":
                chosen = self.balanced(config, m, placement)
            else:
                chosen = PipelineLayout.even(layers, stages)
            self._memo[key] = StageLayout(m, chosen, placement, config.schedule)
        return self._memo[key]

    def _layer_costs(self, config: Config) -> LayerCosts:
        tr = self.training
        return LayerCosts(self.model, self.cluster, tr.recipe, self.gpus(config, "tp"),
                          self.comms, tr.dtype_bytes, config.cp, self.groups(config), tr.fp8,
                          tr.moe_imbalance, config.etp)

    def balanced(self, config: Config, m: int, placement: tuple[int, ...]) -> PipelineLayout:
        """The balanced split of ``config`` (:func:`.split.balanced_layout`)."""
        return balanced_layout(self, config, m, placement)

    def rank_params(self, config: Config, layout: StageLayout) -> list[float]:
        """Parameters each pipeline rank's GPUs hold, dense and expert together
        (:func:`.rank_memory.rank_param_split`)."""
        return [dense + expert for dense, expert in self.rank_param_split(config, layout)]

    def rank_param_split(self, config: Config, layout: StageLayout) -> list[tuple[float, float]]:
        """(dense, expert) parameters per GPU of each pipeline rank (memoised)."""
        key = ("params", config.mesh, layout.stages, layout.placement)
        if key not in self._memo:
            self._memo[key] = rank_param_split(self, config, layout)
        return self._memo[key]

    def peak_in_flight(self, config: Config, layout: StageLayout) -> tuple[int, ...]:
        """Most (stage, micro-batch) activations each pipeline rank holds at once."""
        return self.sim.peak_in_flight(layout.key, config.pp, layout.microbatches,
                                       config.chunks)

    def _buffers(self, config: Config) -> float:
        return buffer_bytes(self.model, self.training, config)

    def memory(self, config: Config, layout: StageLayout | None = None) -> MemoryBreakdown:
        """Memory per GPU of ``config`` on its fullest pipeline rank
        (:func:`~ringpipe.cost.training.rank_memory.rank_memory`)."""
        return rank_memory(self, config, self.layout(config) if layout is None else layout)

    def groups(self, config: Config) -> MeshGroups:
        """Where ``config``'s groups sit on the cluster (memoised per mesh)."""
        key = ("groups", config.mesh, self.placement)
        if key not in self._memo:
            self._memo[key] = mesh_groups(config.mesh, self.cluster.gpus_per_node,
                                          self.placement)
        return self._memo[key]

    def _crossers(self, config: Config, axis: str) -> int:
        """Most GPUs of one node whose next rank along ``axis`` ("pp" or "dp") is on
        another node (:mod:`ringpipe.cost.training.parallel.groups`)."""
        return self.groups(config).next_crossers[axis]

    def gpus(self, config: Config, axis: str) -> tuple[int, ...]:
        """The GPUs of mesh rank 0's ``axis`` group under this model's placement."""
        return self.groups(config).groups[axis]

    def assumptions(self, config: Config) -> dict[str, object]:
        """What decides ``config``'s prediction beyond the model's shape: the sequence,
        batch, dtype and recipe, and for TP, PP and DP the link their messages cross
        (``"intra-node"``: the GPUs' NVLink-class ``intra_node_gbs``; ``"inter-node"``:
        the NIC share ``inter_node_gbs``, per GPU, each way) and what it gets (``tp_gbs``...)."""
        c, tr = self.cluster, self.training
        pp_cross, dp_cross = self._crossers(config, "pp"), self._crossers(config, "dp")

        def link(crosses: bool) -> str:
            return "inter-node" if crosses else "intra-node"

        def gbs(crossers: int) -> float:
            return (c.crossing_bandwidth(crossers) if crossers else c.intra.bandwidth) / 1e9
        out: dict[str, object] = {
            "seq": self.model.seq, "global_batch": tr.global_batch,
            "microbatch_size": config.microbatch_size, "dtype": tr.dtype,
            "recompute": config.recompute, "recipe": tr.recipe.to_dict(),
            "gpus_per_node": c.gpus_per_node,
            "tp_link": link(config.tp > c.gpus_per_node),
            "pp_link": link(pp_cross > 0), "dp_link": link(dp_cross > 0),
            "tp_gbs": (c.inter if config.tp > c.gpus_per_node else c.intra).bandwidth / 1e9,
            "pp_gbs": gbs(pp_cross), "dp_gbs": gbs(c.gpus_per_node if dp_cross else 0),
            "intra_node_gbs": c.intra.bandwidth / 1e9,
            "inter_node_gbs": c.inter.bandwidth / 1e9, "peak_tflops": c.peak_flops / 1e12}
        if config.cp > 1:
            out["cp_link"] = link(self.groups(config).crosses("cp"))
        if self.model.is_moe:
            out.update(ep_link=link(self.groups(config).crosses("ep")), etp=config.etp,
                       moe_imbalance=tr.moe_imbalance,
                       grouped_gemm_efficiency=c.kernels.grouped_gemm_efficiency)
        if tr.fp8:
            out["fp8_tflops"] = c.peak_flops * c.kernels.fp8_ratio / 1e12
        return out

    def message_time(self, config: Config) -> float:
        """One stage-to-stage message (module docstring); 0 without pipelining."""
        if config.pp == 1:
            return 0.0
        mdl, c, t, e = self.model, self.cluster, config.tp, self.training.dtype_bytes
        act = float(mdl.seq * config.microbatch_size * mdl.hidden * e) / config.cp
        crossers = self._crossers(config, "pp")
        if crossers:
            send = c.inter.latency + act / t / c.crossing_bandwidth(crossers)
        else:
            send = c.intra.time(act / t)
        gather = 0.0
        if t > 1 and not self.training.recipe.sequence_parallel:
            gather = self.comms.best("all_gather", act, self.gpus(config, "tp")).time
        return send + gather

    def _dp_time(self, config: Config, dense: float, expert: float = 0.0
                 ) -> tuple[float, float]:
        """(reduce part, gather part) seconds of the gradient communication: ``dense``
        parameters over the DP × CP group, ``expert`` ones over the EDP group."""
        tr = self.training
        _, grad_bytes, _ = state_bytes_per_param(tr.dtype, tr.recipe, config.dp)
        reduce = gather = 0.0
        for params, axis in ((dense, "dp_cp"), (expert, "edp")):
            group = self.gpus(config, axis)
            if len(group) == 1 or params == 0:
                continue
            crosses = (self._crossers(config, "dp") > 0 if axis == "dp_cp" and config.cp == 1
                       else self.groups(config).crosses(axis))
            concurrent = self.cluster.gpus_per_node if crosses else None
            if not tr.recipe.distributed_optimizer:
                reduce += self.comms.best("all_reduce", params * grad_bytes, group,
                                          concurrent).time
                continue
            reduce += self.comms.best("reduce_scatter", params * grad_bytes, group,
                                      concurrent).time
            gather += self.comms.best("all_gather", params * 2.0, group, concurrent).time
        return reduce, gather

    def predict(self, config: Config, memory: MemoryBreakdown | None = None) -> StepPrediction:
        """The predicted step of ``config`` (module docstring)."""
        mdl, c, tr = self.model, self.cluster, self.training
        layout = self.layout(config)
        if tr.fp8:
            check_fp8(c)
        stages, _ = stage_costs(self._layer_costs(config), config.microbatch_size,
                                config.recompute, layout.stages)
        message = self.message_time(config)
        m = layout.microbatches
        timing = self.sim.time(layout.key, config.pp, m, config.chunks,
                               StageCosts(tuple(s.forward for s in stages),
                                          tuple(s.backward_input for s in stages),
                                          tuple(s.backward_weight for s in stages),
                                          message))
        tp_total, cp_total, ep_total = (m * sum(getattr(s, part) for s in stages) / config.pp
                                        for part in ("tp_comm", "cp_comm", "ep_comm"))
        dense, expert = max(self.rank_param_split(config, layout), key=sum)
        params = dense + expert
        reduce, gather = self._dp_time(config, dense, expert)
        first = layout.stages_of(0)
        if tr.recipe.overlap_grad_reduce:
            dp_size = config.dp * config.cp
            buckets = max(1, math.ceil(params / max(BUCKET_PARAMS, 1_000_000 * dp_size)))
            bwd = sum(stages[s].backward_input + stages[s].backward_weight for s in first)
            fwd = sum(stages[s].forward for s in first)
            dp = max(reduce - bwd, reduce / buckets) + max(gather - fwd, gather / buckets)
        else:
            dp = reduce + gather
        _, grad_bytes, _ = state_bytes_per_param(tr.dtype, tr.recipe, config.dp)
        owned = (dense / (config.dp * config.cp) + expert / config.mesh.edp
                 if tr.recipe.distributed_optimizer else dense + expert)
        optimizer = owned * (26.0 + grad_bytes) / c.memory_bandwidth
        casts = WEIGHT_CAST_BYTES * params / c.memory_bandwidth if tr.fp8 else 0.0
        return StepPrediction(
            config=config, num_microbatches=m,
            step_time=timing.makespan + dp + optimizer + casts,
            compute_time=m * sum(s.compute for s in stages) / config.pp,  # never busy - comm
            tp_comm_time=tp_total,
            bubble_time=timing.makespan * timing.bubble_fraction,
            dp_comm_time=dp, optimizer_time=optimizer,
            bubble_fraction=timing.bubble_fraction, message_time=message,
            hardware_flops_per_step=executed_flops(mdl, tr.global_batch, config.recompute),
            model_flops_per_step=executed_flops(mdl, tr.global_batch, "none"),
            memory=self.memory(config, layout) if memory is None else memory,
            memory_capacity=c.memory_bytes, peak_flops=c.peak_flops,
            headroom=self.headroom, dp_comm_total=reduce + gather,
            layers_per_stage=layout.layers, peak_in_flight=timing.peak_in_flight,
            layout=layout.stages.format(), assumptions=self.assumptions(config),
            cp_comm_time=cp_total, ep_comm_time=ep_total, fp8_cast_time=casts,
            rank_busy=timing.busy)
