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
that cross at once. Memory per rank is each stage's own (:mod:`.stages`) at the
schedule's own peak.

**Data parallelism** (on the links the DP group spans, every GPU of a node crossing at
once): gradients all-reduced (fp32 for bf16 with ``fp32_grads``), or with the
distributed optimizer reduce-scattered and the bf16 weights all-gathered. With
``overlap_grad_reduce`` Megatron launches each bucket's reduction (buckets of
max(40M, 1M·dp) parameters) as soon as the last micro-batch's backward has produced it,
and gathers weights during the next forward, so only
max(t_comm − t_window, t_comm / buckets) is exposed, the window being the first
pipeline rank's backward (forward for the gather) of one micro-batch. Without it, the
whole reduction follows the pipeline drain.

**Optimizer step**: mixed-precision Adam reads master weights, both moments and the
gradient, and writes the first three and the 16-bit weights: 26 + gradient bytes per
parameter it owns (1/dp of them with the distributed optimizer), at HBM bandwidth.

Step time = makespan + exposed DP communication + optimizer step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ringpipe.cost.hardware.cluster import GIB, Cluster
from ringpipe.cost.hardware.collectives import CollectiveModel
from ringpipe.cost.training.memory import (
    RESERVED_BYTES,
    MemoryBreakdown,
    activation_bytes,
    state_bytes_per_param,
)
from ringpipe.cost.training.operators import LayerCosts, stage_costs
from ringpipe.cost.training.pipeline import PipelineSimulator, StageCosts
from ringpipe.cost.training.prediction import Config, StepPrediction
from ringpipe.cost.training.spec import TrainingSpec, executed_flops
from ringpipe.cost.training.split import balanced_layout, buffer_bytes
from ringpipe.cost.training.stages import StageLayout, rank_params, stage_bytes
from ringpipe.cost.training.synth import synth_layout
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
    configuration must leave free."""

    model: ModelConfig
    training: TrainingSpec
    cluster: Cluster
    headroom: float = 0.0
    sim: PipelineSimulator | None = None
    comms: CollectiveModel | None = None
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
        return LayerCosts(self.model, self.cluster, tr.recipe, config.mesh.group("tp", 0),
                          self.comms, tr.dtype_bytes)

    def balanced(self, config: Config, m: int, placement: tuple[int, ...]) -> PipelineLayout:
        """The balanced split of ``config`` (:func:`.split.balanced_layout`)."""
        return balanced_layout(self, config, m, placement)

    def rank_params(self, config: Config, layout: StageLayout) -> list[float]:
        """Parameters each pipeline rank's GPUs hold (:func:`.stages.rank_params`)."""
        key = ("params", config.tp, config.pp, layout.stages, layout.placement)
        if key not in self._memo:
            self._memo[key] = rank_params(self.model, layout, config.pp, config.tp)
        return self._memo[key]

    def peak_in_flight(self, config: Config, layout: StageLayout) -> tuple[int, ...]:
        """Most (stage, micro-batch) activations each pipeline rank holds at once."""
        return self.sim.peak_in_flight(layout.key, config.pp, layout.microbatches,
                                       config.chunks)

    def _buffers(self, config: Config) -> float:
        return buffer_bytes(self.model, self.training, config)

    def memory(self, config: Config, layout: StageLayout | None = None) -> MemoryBreakdown:
        """Memory per GPU of ``config`` on its fullest pipeline rank (:mod:`.stages`)."""
        mdl, tr, t, b = self.model, self.training, config.tp, config.microbatch_size
        layout = self.layout(config) if layout is None else layout
        peaks = self.peak_in_flight(config, layout)
        per = stage_bytes(mdl, b, t, config.recompute, tr.recipe, layout.stages,
                          tr.dtype_bytes)
        acts = self.sim.peak_bytes(layout.key, config.pp, layout.microbatches,
                                   config.chunks, per.held, per.pending, per.transient)
        w, g, o = state_bytes_per_param(tr.dtype, tr.recipe, config.dp)
        buffers = self._buffers(config)
        worst: MemoryBreakdown | None = None
        # a CPU process has no CUDA context nor cuBLAS workspace to reserve
        reserved = 0.0 if self.cluster.device == "cpu" else RESERVED_BYTES
        for rank, params in enumerate(self.rank_params(config, layout)):
            held = acts[rank]
            if config.recompute == "full" and any(layout.layers[s]
                                                  for s in layout.stages_of(rank)):
                held += activation_bytes(mdl, b, t, "none", tr.recipe)  # being recomputed
            mem = MemoryBreakdown(params * w, params * g, params * o, held, buffers,
                                  reserved, rank, peaks[rank])
            if worst is None or mem.total > worst.total:
                worst = mem
        assert worst is not None
        return worst

    def _crossers(self, config: Config, axis: str) -> int:
        """Most GPUs of one node whose next rank along ``axis`` (``Mesh.group`` order,
        rank = (d·pp + p)·tp + t) is on another node."""
        key = ("crossers", config.mesh, axis)
        if key in self._memo:
            return self._memo[key]
        mesh, per = config.mesh, self.cluster.gpus_per_node
        size, stride = {"pp": (mesh.pp, mesh.tp), "dp": (mesh.dp, mesh.pp * mesh.tp)}[axis]
        ranks = np.arange(mesh.world)
        pos = (ranks // stride) % size
        nxt = np.where(pos == size - 1, ranks - (size - 1) * stride, ranks + stride)
        crossing = (ranks // per) != (nxt // per)
        self._memo[key] = int(np.bincount(ranks[crossing] // per).max()) \
            if crossing.any() else 0
        return self._memo[key]

    def assumptions(self, config: Config) -> dict[str, object]:
        """What decides ``config``'s prediction beyond the model's shape: the sequence,
        batch, dtype and recipe, and for TP, PP and DP the link their messages cross
        (``"intra-node"``: the GPUs' NVLink-class ``intra_node_gbs``; ``"inter-node"``:
        the NIC share ``inter_node_gbs``, per GPU, each way)."""
        c, tr = self.cluster, self.training

        def link(crosses: bool) -> str:
            return "inter-node" if crosses else "intra-node"

        return {"seq": self.model.seq, "global_batch": tr.global_batch,
                "microbatch_size": config.microbatch_size, "dtype": tr.dtype,
                "recompute": config.recompute, "recipe": tr.recipe.to_dict(),
                "gpus_per_node": c.gpus_per_node,
                "tp_link": link(config.tp > c.gpus_per_node),
                "pp_link": link(self._crossers(config, "pp") > 0),
                "dp_link": link(self._crossers(config, "dp") > 0),
                "intra_node_gbs": c.intra.bandwidth / 1e9,
                "inter_node_gbs": c.inter.bandwidth / 1e9,
                "peak_tflops": c.peak_flops / 1e12}

    def message_time(self, config: Config) -> float:
        """One stage-to-stage message (module docstring); 0 without pipelining."""
        if config.pp == 1:
            return 0.0
        mdl, c, t, e = self.model, self.cluster, config.tp, self.training.dtype_bytes
        act = float(mdl.seq * config.microbatch_size * mdl.hidden * e)
        crossers = self._crossers(config, "pp")
        if crossers:
            send = c.inter.latency + act / t / c.crossing_bandwidth(crossers)
        else:
            send = c.intra.time(act / t)
        gather = 0.0
        if t > 1 and not self.training.recipe.sequence_parallel:
            gather = self.comms.best("all_gather", act, config.mesh.group("tp", 0)).time
        return send + gather

    def _dp_time(self, config: Config, params: float) -> tuple[float, float]:
        """(reduce part, gather part) seconds of the DP communication of ``params``."""
        if config.dp == 1:
            return 0.0, 0.0
        tr = self.training
        group = config.mesh.group("dp", 0)
        concurrent = self.cluster.gpus_per_node if self._crossers(config, "dp") else None
        _, grad_bytes, _ = state_bytes_per_param(tr.dtype, tr.recipe, config.dp)
        if not tr.recipe.distributed_optimizer:
            return self.comms.best("all_reduce", params * grad_bytes, group,
                                   concurrent).time, 0.0
        rs = self.comms.best("reduce_scatter", params * grad_bytes, group, concurrent).time
        ag = self.comms.best("all_gather", params * 2.0, group, concurrent).time
        return rs, ag

    def predict(self, config: Config, memory: MemoryBreakdown | None = None) -> StepPrediction:
        """The predicted step of ``config`` (module docstring)."""
        mdl, c, tr = self.model, self.cluster, self.training
        layout = self.layout(config)
        stages, _ = stage_costs(self._layer_costs(config), config.microbatch_size,
                                config.recompute, layout.stages)
        message = self.message_time(config)
        m = layout.microbatches
        timing = self.sim.time(layout.key, config.pp, m, config.chunks,
                               StageCosts(tuple(s.forward for s in stages),
                                          tuple(s.backward_input for s in stages),
                                          tuple(s.backward_weight for s in stages),
                                          message))
        tp_total = m * sum(s.tp_comm for s in stages) / config.pp
        params = max(self.rank_params(config, layout))
        reduce, gather = self._dp_time(config, params)
        first = layout.stages_of(0)
        if tr.recipe.overlap_grad_reduce:
            buckets = max(1, math.ceil(params / max(BUCKET_PARAMS, 1_000_000 * config.dp)))
            bwd = sum(stages[s].backward_input + stages[s].backward_weight for s in first)
            fwd = sum(stages[s].forward for s in first)
            dp = max(reduce - bwd, reduce / buckets) + max(gather - fwd, gather / buckets)
        else:
            dp = reduce + gather
        _, grad_bytes, _ = state_bytes_per_param(tr.dtype, tr.recipe, config.dp)
        shard = config.dp if tr.recipe.distributed_optimizer else 1
        optimizer = params / shard * (26.0 + grad_bytes) / c.memory_bandwidth
        return StepPrediction(
            config=config, num_microbatches=m,
            step_time=timing.makespan + dp + optimizer,
            compute_time=m * sum(s.compute for s in stages) / config.pp,  # never busy - tp
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
            layout=layout.stages.format(), assumptions=self.assumptions(config))


def headroom_bytes(gib: float) -> float:
    """``--headroom`` GiB as bytes (ValueError when negative or not a number)."""
    return check_real("headroom (GiB)", gib, 0.0) * GIB
