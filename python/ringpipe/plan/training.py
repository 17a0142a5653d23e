"""A plan: a model on a dp × pp × cp × tp mesh (with ep for MoE), driven by a schedule.

``Plan(model_config, mesh, schedule="1f1b", microbatches=m, allreduce="ring",
layers_per_stage=None, chunks=None, layout=None, split="even")`` fixes everything before
anything runs:

* the schedule (a generator from :mod:`ringpipe.schedules`, lowered with SEND/RECV for
  its stage -> rank placement and validated, so it cannot deadlock);
* the stages, a :class:`~ringpipe.plan.layout.PipelineLayout` of ``pp · v`` stages (v =
  chunks per rank, 1 unless the schedule interleaves), each a contiguous slice of the
  layers, stage 0 with the embedding and the last with the head: ``split="even"`` (the
  first ``L mod S`` stages take one layer more), ``split="balanced"``
  (:mod:`ringpipe.plan.balance`, weighing the embedding and the head by their FLOPs),
  explicit counts ``layers_per_stage``, or a Megatron-style ``layout`` such as
  ``"E|t*2|t*2|t,L"`` (a stage may hold the embedding or the head alone; with a layout
  and a schedule that takes chunks, v follows from its stage count); ``schedule="synth"``
  (or ``"auto"``) synthesises the schedule for these stages' FLOPs
  (:func:`ringpipe.schedules.synthesize`); a :class:`~ringpipe.schedules.Schedule`
  object (synthesised for other costs, read from CSV) runs as given;
* which all-reduce algorithm every TP and DP reduction uses.

``plan.run(params, batch, backend=...)`` executes it on in-process ranks
(:func:`ringpipe.runtime.run`; on the CPU, or with ``backend="cupy"`` on one GPU) and
returns the loss, the outputs, the full-shape
gradients and per-rank counters. The micro-batch size is ``B / (dp · m)``: each DP
replica takes a contiguous slice of the global batch, cut into m micro-batches.
"""

from __future__ import annotations

import numpy as np

from ringpipe.kernels.heap import HeapPolicy
from ringpipe.kernels.threads import ThreadPolicy
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.model.stage import StageSpec
from ringpipe.plan.layout import SPLITS, PipelineLayout, split_layers
from ringpipe.plan.parallel import check_parallel_model
from ringpipe.runtime.groups import ALLREDUCE_ALGORITHMS
from ringpipe.runtime.result import Batch, PlanResult, RankCounters
from ringpipe.runtime.run import run
from ringpipe.schedules import (
    CostModel,
    Schedule,
    add_communication,
    generate,
    resolve_chunks,
    schedule_spec,
    synthesize,
    validate,
)
from ringpipe.schedules.registry import SYNTH
from ringpipe.validation import check_int

__all__ = ["ALLREDUCE_ALGORITHMS", "PLAN_BACKENDS", "Batch", "Plan", "PlanResult", "RankCounters",
           "split_layers"]

#: Where ``Plan.run`` computes: the CPU (numpy / numba all-reduce kernels) or one GPU
#: (cupy: CuPy arrays and the CUDA all-reduce kernel; see :mod:`ringpipe.runtime.inproc`).
PLAN_BACKENDS = ("numpy", "numba", "cupy")


class Plan:
    """A model config × mesh × schedule, checked and lowered; see the module docstring."""

    #: What :func:`ringpipe.runtime.run` runs: a training step (an
    #: :class:`~ringpipe.plan.inference.InferencePlan` is ``"inference"``).
    kind = "training"

    def __init__(self, model_config: ModelConfig, mesh: Mesh, schedule: str | Schedule = "1f1b",
                 microbatches: int = 1, allreduce: str = "ring",
                 layers_per_stage: list[int] | tuple[int, ...] | None = None,
                 chunks: int | None = None, layout: str | PipelineLayout | None = None,
                 split: str = "even") -> None:
        if not isinstance(model_config, ModelConfig):
            raise TypeError(f"Plan: model_config must be a ModelConfig, got "
                            f"{type(model_config).__name__}")
        if not isinstance(mesh, Mesh):
            raise TypeError(f"Plan: mesh must be a Mesh, got {type(mesh).__name__}")
        microbatches = check_int("Plan: microbatches", microbatches)
        if allreduce not in ALLREDUCE_ALGORITHMS:
            raise ValueError(f"Plan: unknown allreduce {allreduce!r}; choose one of "
                             f"{', '.join(ALLREDUCE_ALGORITHMS)}")
        model_config.check_executable("Plan")
        model_config.check_tp(mesh.tp)
        check_parallel_model(model_config, mesh)
        given = schedule if isinstance(schedule, Schedule) else None
        if given is not None:
            given, chunks = _check_given(given, mesh, microbatches, chunks)
            schedule = SYNTH  # a spec that takes any v
        spec = schedule_spec(schedule, "Plan: schedule")  # unknown names fail here, listed
        if isinstance(layout, str):
            layout = PipelineLayout.parse(layout)
        if layout is not None and not isinstance(layout, PipelineLayout):
            raise TypeError(f"Plan: layout must be a string such as 'E,t*3|t*4,L' or a "
                            f"PipelineLayout, got {type(layout).__name__}")
        if split not in SPLITS:
            raise ValueError(f"Plan: unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        if layout is not None and (layers_per_stage is not None or split != "even"):
            raise ValueError("Plan: give a layout, or layers_per_stage, or a split, not two")
        if layout is not None and chunks is None and spec.takes_chunks:
            if layout.num_stages % mesh.pp:
                raise ValueError(f"Plan: layout {layout.format()!r} has {layout.num_stages} "
                                 f"stages, not a multiple of pp = {mesh.pp}")
            chunks = layout.num_stages // mesh.pp
        v = resolve_chunks(schedule, chunks)
        if given is not None:
            compute = given
            self.layout = _stage_layout(model_config, compute.num_stages, compute.placement,
                                        layout, layers_per_stage, split)
        elif spec.name == SYNTH:  # built for this plan's own stage costs (FLOPs)
            self.layout: PipelineLayout = _stage_layout(model_config, mesh.pp * v, None, layout,
                                                        layers_per_stage, split)
            compute = synthesize(_flop_costs(model_config, self.layout), None, mesh.pp,
                                 microbatches, v)
        else:
            compute = generate(schedule, mesh.pp, microbatches, v)
            self.layout = _stage_layout(model_config, compute.num_stages, compute.placement,
                                        layout, layers_per_stage, split)
        self.config = model_config
        self.mesh = mesh
        self.schedule_name = spec.name if given is None else given.name
        self.microbatches = microbatches
        self.allreduce = allreduce
        self.chunks = v
        self.layers_per_stage = self.layout.layers_per_stage
        self.schedule: Schedule = add_communication(compute)
        validate(self.schedule)
        bounds = self.layout.bounds
        self.stages: tuple[StageSpec, ...] = tuple(
            StageSpec(model_config, bounds[s], bounds[s + 1], mesh.tp, embedding=st.embedding,
                      head=st.head, cp=mesh.cp, ep=mesh.ep)
            for s, st in enumerate(self.layout.stages))

    def check_batch_size(self, batch_size: int) -> int:
        """The micro-batch size, or ValueError if dp × microbatches does not divide B."""
        per = self.mesh.dp * self.microbatches
        if batch_size < per:
            raise ValueError(f"batch of {batch_size} is smaller than dp × microbatches = "
                             f"{self.mesh.dp} × {self.microbatches} = {per}; every micro-batch "
                             "needs at least one sequence")
        if batch_size % per:
            raise ValueError(f"batch of {batch_size} is not divisible by dp × microbatches "
                             f"= {self.mesh.dp} × {self.microbatches} = {per}")
        return batch_size // per

    def run(self, params: dict[str, np.ndarray], batch: Batch | tuple[np.ndarray, np.ndarray],
            backend: str = "numba", threads: ThreadPolicy | None = None,
            heap: HeapPolicy | None = None) -> PlanResult:
        """Execute every rank's action list on in-process ranks; see the module docs
        (other runtimes: :func:`ringpipe.runtime.run`). ``threads``: the BLAS and Numba
        threads (default: each rank's fair share of the cores); ``heap``: what the
        step's allocations do (default: freed memory stays in the process for the
        step, :mod:`ringpipe.kernels.heap`)."""
        if backend not in PLAN_BACKENDS:
            raise ValueError(f"Plan.run: unknown backend {backend!r}; choose one of "
                             f"{', '.join(PLAN_BACKENDS)}")
        return run(self, params, batch, backend, threads=threads, heap=heap)

    def __repr__(self) -> str:
        return (f"Plan({self.mesh}, schedule={self.schedule_name!r}, microbatches="
                f"{self.microbatches}, chunks={self.chunks}, allreduce={self.allreduce!r}, "
                f"layout={self.layout.format()!r})")


def executable_costs(config: ModelConfig) -> dict[str, float]:
    """FLOPs of one sequence through one layer, the input layer and the head, forward and
    backward (3 × forward; Narayanan et al., SC'21): what ``split="balanced"`` weighs the
    NumPy model's stages by (a token embedding is a gather: no FLOPs)."""
    h, s = config.hidden, config.seq
    layer = config.layer_matmul_flops(1) + config.layer_attention_flops(1)
    dense = 2.0 * s * h * h
    return {"layer_cost": 3.0 * layer,
            "embedding_cost": 0.0 if config.vocab else 3.0 * dense,
            "head_cost": 3.0 * (config.logits_flops(1) if config.vocab else dense)}


def _check_given(schedule: Schedule, mesh: Mesh, microbatches: int,
                 chunks: int | None) -> tuple[Schedule, int]:
    """A schedule passed as such (e.g. synthesised, or read from CSV): it must fit the mesh
    and m and be valid; its messages are dropped (the plan adds its own). Returns it
    compute-only, and its v."""
    if schedule.num_ranks != mesh.pp:
        raise ValueError(f"Plan: the schedule has {schedule.num_ranks} pipeline ranks, the "
                         f"mesh pp = {mesh.pp}")
    if schedule.num_microbatches != microbatches:
        raise ValueError(f"Plan: the schedule has {schedule.num_microbatches} micro-batches, "
                         f"microbatches = {microbatches}")
    if schedule.has_comms:
        schedule = schedule.without_comms()
    v = schedule.chunks_per_rank
    if chunks is not None and chunks != v:
        raise ValueError(f"Plan: the schedule has {v} stages per rank, chunks = {chunks}")
    validate(schedule)
    return schedule, v


def _flop_costs(config: ModelConfig, layout: PipelineLayout) -> CostModel:
    """Per-stage F, I and W in FLOPs (each a third of :func:`executable_costs`), for the
    synthesised schedule of an executable plan."""
    c = executable_costs(config)
    per = [(stage.layers * c["layer_cost"] + stage.embedding * c["embedding_cost"]
            + stage.head * c["head_cost"]) / 3 for stage in layout.stages]
    return CostModel(forward=per, backward_input=per, backward_weight=per)


def _stage_layout(config: ModelConfig, stages: int, placement: tuple[int, ...] | None,
                  layout: PipelineLayout | None,
                  layers_per_stage: list[int] | tuple[int, ...] | None,
                  split: str) -> PipelineLayout:
    """The plan's layout (module docstring); ValueError when it does not fit."""
    if layout is not None:
        return layout.check(config.layers, stages)
    if split == "balanced":
        return PipelineLayout.balanced(config.layers, stages, placement=placement,
                                       **executable_costs(config))
    return PipelineLayout.from_counts(split_layers(config.layers, stages, layers_per_stage))
