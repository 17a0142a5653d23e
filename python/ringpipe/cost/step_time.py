"""Step time and memory per GPU of one TP × PP × DP configuration.

**Compute** (Narayanan et al., SC'21, arXiv 2104.04473): per layer and micro-batch of b
sequences, the forward runs 2·b·s·P_mm + 4·b·s²·h FLOPs split over the t TP ranks; the
backward runs twice that, split into the input gradient (I: dX of every matmul, both
attention products) and the weight gradient (W: dW of every matmul), which zero-bubble
schedules run separately. Full recomputation adds one forward to I, selective
recomputation only the attention core (4·b·s²·h and its memory traffic). Matmuls run
at ``cluster.achievable_flops`` (one calibrated fraction of peak). The non-matmul work
(norms, GeLU, softmax, dropout, residuals) is memory-bound: it is charged as the
activation bytes of Korthikanti et al.'s formula written once in the forward and read
plus written once in the backward, at HBM bandwidth.

**Communication**

* TP: 2 all-reduces of b·s·h elements per layer in the forward and 2 in the backward
  (plus 2 in a full recompute), on the links the TP group spans, priced from the step
  tables (:mod:`ringpipe.cost.collective_cost`). Not overlapped with compute (Megatron
  runs them on the critical path), so they count as exposed communication.
* PP: one b·s·h/t message per stage boundary and micro-batch in each direction
  (Megatron's scatter/gather optimisation, §4.1: each TP rank sends its 1/t slice, and
  an all-gather inside the node rebuilds it), overlapped with compute by the simulator.
* DP: one all-reduce of the 16-bit gradients per step after the pipeline drains (not
  overlapped), on the links the DP group spans.

**Pipeline**: per-stage costs go to the schedule simulator (:mod:`.pipeline`), whose
makespan includes the bubble. Step time = makespan + DP all-reduce + optimizer step
(28 bytes of HBM traffic per parameter for mixed-precision Adam).

**Memory per GPU** (max over pipeline ranks): 16 bytes per parameter for 16-bit
weights and gradients and fp32 master weights and Adam moments (12 of them sharded
across DP with ``shard_optimizer``), plus activations: Korthikanti et al. (arXiv
2205.05198) bytes per layer × layers per stage × the peak in-flight micro-batches the
simulator reports for that rank (the first stage's is the largest for every built-in
schedule), plus fp32 logits on the last stage and a fixed runtime reserve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ringpipe.cost.cluster import GIB, Cluster
from ringpipe.cost.collective_cost import CollectiveModel
from ringpipe.cost.models import RECOMPUTE, ModelSpec, TrainingSpec, executed_flops
from ringpipe.cost.pipeline import PipelineSimulator, StageCosts, chunks_for, stage_layers

#: CUDA context, NCCL buffers and allocator fragmentation, per GPU.
RESERVED_BYTES = 2.0 * GIB
#: Bytes of HBM traffic per parameter in one mixed-precision Adam step.
OPTIMIZER_BYTES_PER_PARAM = 28.0


def _check_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Config.{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"Config.{name} must be >= 1, got {value}")


@dataclass(frozen=True)
class Config:
    """One point of the search: mesh sizes, schedule, micro-batch size, recompute."""

    tp: int
    pp: int
    dp: int
    schedule: str = "1f1b"
    microbatch_size: int = 1
    chunks: int = 1
    recompute: str = "none"

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "dp", "microbatch_size", "chunks"):
            _check_int(name, getattr(self, name))
        chunks_for(self.schedule, self.chunks)  # unknown schedule / wrong v -> ValueError
        if self.recompute not in RECOMPUTE:
            raise ValueError(f"Config.recompute must be one of {RECOMPUTE}, "
                             f"got {self.recompute!r}")

    @property
    def world(self) -> int:
        """GPUs used, tp · pp · dp."""
        return self.tp * self.pp * self.dp

    def label(self) -> str:
        """Short human-readable form, e.g. ``tp8 pp4 dp1 interleaved-1f1b v3 mb1 full``."""
        v = f" v{self.chunks}" if self.chunks > 1 else ""
        return (f"tp{self.tp} pp{self.pp} dp{self.dp} {self.schedule}{v} "
                f"mb{self.microbatch_size} {self.recompute}")


@dataclass(frozen=True)
class Memory:
    """Bytes per GPU on the fullest pipeline rank."""

    states: float
    activations: float
    reserved: float

    @property
    def total(self) -> float:
        """states + activations + reserved."""
        return self.states + self.activations + self.reserved


@dataclass(frozen=True)
class Prediction:
    """A configuration's predicted step. Times in seconds; the five parts add up to
    ``step_time`` (compute, TP and bubble are averages over pipeline ranks)."""

    config: Config
    num_microbatches: int
    step_time: float
    compute_time: float
    tp_comm_time: float
    bubble_time: float
    dp_comm_time: float
    optimizer_time: float
    bubble_fraction: float
    message_time: float
    flops_per_step: float
    model_flops_per_step: float
    memory: Memory
    memory_capacity: float

    @property
    def fits(self) -> bool:
        """Whether the fullest GPU's memory fits its HBM."""
        return self.memory.total <= self.memory_capacity

    @property
    def tflops_per_gpu(self) -> float:
        """Executed FLOPs (recompute included, as Megatron counts) per GPU per second."""
        return self.flops_per_step / (self.step_time * self.config.world) / 1e12

    @property
    def model_tflops_per_gpu(self) -> float:
        """Model FLOPs (no recomputation) per GPU per second: useful work, so it ranks
        configurations of one global batch exactly as the step time does."""
        return self.model_flops_per_step / (self.step_time * self.config.world) / 1e12

    @property
    def comm_fraction(self) -> float:
        """Exposed communication (TP and DP all-reduces) as a fraction of the step."""
        return (self.tp_comm_time + self.dp_comm_time) / self.step_time

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the ``plan`` command prints for a candidate."""
        c = self.config
        return {"tp": c.tp, "pp": c.pp, "dp": c.dp, "schedule": c.schedule,
                "chunks": c.chunks, "microbatch_size": c.microbatch_size,
                "recompute": c.recompute, "num_microbatches": self.num_microbatches,
                "step_time_s": self.step_time, "tflops_per_gpu": self.tflops_per_gpu,
                "model_tflops_per_gpu": self.model_tflops_per_gpu,
                "memory_gib": self.memory.total / GIB, "bubble_fraction": self.bubble_fraction,
                "comm_fraction": self.comm_fraction, "fits": self.fits,
                "breakdown_s": {"compute": self.compute_time, "tp_comm": self.tp_comm_time,
                                "bubble": self.bubble_time, "dp_comm": self.dp_comm_time,
                                "optimizer": self.optimizer_time}}


def _mesh_rank(config: Config, d: int, p: int, t: int) -> int:
    return (d * config.pp + p) * config.tp + t  # ringpipe.mesh's dp x pp x tp layout


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
    (it memoises schedules and collective profiles)."""

    model: ModelSpec
    training: TrainingSpec
    cluster: Cluster
    reserved_bytes: float = RESERVED_BYTES
    sim: PipelineSimulator | None = None
    comms: CollectiveModel | None = None

    def __post_init__(self) -> None:
        for name, kind in (("model", ModelSpec), ("training", TrainingSpec),
                           ("cluster", Cluster)):
            if not isinstance(getattr(self, name), kind):
                raise TypeError(f"StepModel.{name} must be a {kind.__name__}, "
                                f"got {type(getattr(self, name)).__name__}")
        if self.sim is None:
            object.__setattr__(self, "sim", PipelineSimulator())
        if self.comms is None:
            object.__setattr__(self, "comms", CollectiveModel(self.cluster))

    def _layout(self, config: Config) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
        m = _check_fits_cluster(config, self.cluster, self.training)
        v = chunks_for(config.schedule, config.chunks)
        placement = self.sim.placement(config.schedule, config.pp, m, v)
        layers = stage_layers(self.model.layers, len(placement))
        return m, layers, placement

    def _rank_params(self, config: Config, layers: tuple[int, ...],
                     placement: tuple[int, ...]) -> list[float]:
        """Parameters each pipeline rank holds (its layers, the embedding on stage 0's
        rank, the output layer on the last stage's rank unless tied on the same rank)."""
        mdl, last = self.model, len(layers) - 1
        out = []
        for rank in range(config.pp):
            mine = [s for s, r in enumerate(placement) if r == rank]
            params = sum(layers[s] for s in mine) * mdl.params_per_layer
            params += mdl.embedding_params if 0 in mine else 0
            if last in mine and (not mdl.tied_embeddings or 0 not in mine):
                params += mdl.output_params
            params += 2 * mdl.hidden if last in mine else 0  # final norm
            out.append(params / config.tp)
        return out

    def memory(self, config: Config) -> Memory:
        """Memory per GPU of ``config`` on its fullest pipeline rank."""
        mdl, t, b = self.model, config.tp, config.microbatch_size
        m, layers, placement = self._layout(config)
        peaks = self.sim.peak_in_flight(config.schedule, config.pp, m, config.chunks)
        last = len(layers) - 1
        per_layer = mdl.activation_bytes(b, t, config.recompute)
        bytes_per_param = 4 + 12 / config.dp if self.training.shard_optimizer else 16
        worst = (0.0, 0.0)
        for rank, params in enumerate(self._rank_params(config, layers, placement)):
            mine = [s for s, r in enumerate(placement) if r == rank]
            acts = peaks[rank] * max(layers[s] for s in mine) * per_layer
            if config.recompute == "full":
                acts += mdl.activation_bytes(b, t, "none")  # the layer being recomputed
            if last in mine:
                acts += 4.0 * b * mdl.seq * mdl.vocab / t  # fp32 logits
            if params * bytes_per_param + acts > sum(worst):
                worst = (params * bytes_per_param, acts)
        return Memory(worst[0], worst[1], self.reserved_bytes)

    def predict(self, config: Config, memory: Memory | None = None) -> Prediction:
        """The predicted step of ``config`` (module docstring)."""
        mdl, c, tr = self.model, self.cluster, self.training
        t, b, nbytes = config.tp, config.microbatch_size, tr.dtype_bytes
        m, layers, placement = self._layout(config)
        rate, hbm = c.achievable_flops, c.memory_bandwidth
        act = mdl.seq * b * mdl.hidden * nbytes  # one b·s·h tensor
        tp_group = [_mesh_rank(config, 0, 0, i) for i in range(t)]
        ar = self.comms.best("all_reduce", act, tp_group).time if t > 1 else 0.0
        fm, fa = mdl.layer_matmul_flops(b) / t, mdl.layer_attention_flops(b) / t
        full_bytes = mdl.activation_bytes(b, t, "none")
        score_bytes = full_bytes - mdl.activation_bytes(b, t, "selective")
        fwd = (fm + fa) / rate + full_bytes / hbm + 2 * ar
        recompute = {"none": 0.0, "selective": fa / rate + score_bytes / hbm,
                     "full": fwd}[config.recompute]
        bwd_in = (fm + 2 * fa) / rate + 2 * full_bytes / hbm + 2 * ar + recompute
        bwd_w = fm / rate
        tp_layer = (4 + (2 if config.recompute == "full" else 0)) * ar
        logits = mdl.logits_flops(b) / t / rate
        last = len(layers) - 1
        stage_f = [n * fwd + (logits if s == last else 0) + (ar if s == 0 else 0)
                   for s, n in enumerate(layers)]
        stage_i = [n * bwd_in + (logits if s == last else 0) for s, n in enumerate(layers)]
        stage_w = [n * bwd_w + (logits if s == last else 0) for s, n in enumerate(layers)]
        message = self._message_time(config, act)
        timing = self.sim.time(config.schedule, config.pp, m, config.chunks,
                               StageCosts(tuple(stage_f), tuple(stage_i), tuple(stage_w),
                                          message))
        tp_total = m * (sum(n * tp_layer for n in layers) + ar) / config.pp
        params = max(self._rank_params(config, layers, placement))
        dp_group = [_mesh_rank(config, d, 0, 0) for d in range(config.dp)]
        dp = self.comms.best("all_reduce", params * nbytes, dp_group).time \
            if config.dp > 1 else 0.0
        shard = config.dp if tr.shard_optimizer else 1
        optimizer = params * OPTIMIZER_BYTES_PER_PARAM / shard / hbm
        busy = timing.makespan * (1 - timing.bubble_fraction)
        return Prediction(
            config=config, num_microbatches=m,
            step_time=timing.makespan + dp + optimizer,
            compute_time=busy - tp_total, tp_comm_time=tp_total,
            bubble_time=timing.makespan * timing.bubble_fraction,
            dp_comm_time=dp, optimizer_time=optimizer,
            bubble_fraction=timing.bubble_fraction, message_time=message,
            flops_per_step=executed_flops(mdl, tr.global_batch, config.recompute),
            model_flops_per_step=executed_flops(mdl, tr.global_batch, "none"),
            memory=self.memory(config) if memory is None else memory,
            memory_capacity=c.memory_bytes)

    def _message_time(self, config: Config, act_bytes: float) -> float:
        """One stage-to-stage message: the 1/t slice over the PP link, then an
        all-gather inside the TP group (0 without pipelining)."""
        if config.pp == 1:
            return 0.0
        c, t = self.cluster, config.tp
        hops = [(_mesh_rank(config, 0, p, 0), _mesh_rank(config, 0, (p + 1) % config.pp, 0))
                for p in range(config.pp)]
        crosses = any(c.node_of(a) != c.node_of(b) for a, b in hops)
        link = c.inter if crosses else c.intra
        gather = 0.0
        if t > 1:
            tp_group = [_mesh_rank(config, 0, 0, i) for i in range(t)]
            gather = self.comms.best("all_gather", act_bytes, tp_group).time
        return link.time(act_bytes / t) + gather
