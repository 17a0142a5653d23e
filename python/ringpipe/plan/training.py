"""A plan: a model on a dp × pp × tp mesh, driven by a pipeline schedule.

``Plan(model_config, mesh, schedule="1f1b", microbatches=m, allreduce="ring",
layers_per_stage=None, chunks=None)`` fixes everything before anything runs:

* the schedule (a generator from :mod:`ringpipe.schedules`, lowered with SEND/RECV for
  its stage -> rank placement and validated, so it cannot deadlock);
* the stages: ``pp · v`` contiguous slices of the layers (v = chunks per rank, 1 unless
  the schedule interleaves), even by default (the first ``L mod S`` stages take one layer
  more) or as given by ``layers_per_stage``; uneven splits are allowed;
* which all-reduce algorithm every TP and DP reduction uses.

``plan.run(params, batch, backend=...)`` executes it on in-process ranks
(:func:`ringpipe.runtime.run`; on the CPU, or with ``backend="cupy"`` on one GPU) and
returns the loss, the outputs, the full-shape
gradients and per-rank counters. The micro-batch size is ``B / (dp · m)``: each DP
replica takes a contiguous slice of the global batch, cut into m micro-batches.
"""

from __future__ import annotations

import numpy as np

from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.model.stage import StageSpec
from ringpipe.plan.layout import split_layers, stage_bounds
from ringpipe.runtime.groups import ALLREDUCE_ALGORITHMS
from ringpipe.runtime.result import Batch, PlanResult, RankCounters
from ringpipe.runtime.run import run
from ringpipe.schedules import (
    Schedule,
    add_communication,
    generate,
    resolve_chunks,
    schedule_spec,
    validate,
)
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

    def __init__(self, model_config: ModelConfig, mesh: Mesh, schedule: str = "1f1b",
                 microbatches: int = 1, allreduce: str = "ring",
                 layers_per_stage: list[int] | tuple[int, ...] | None = None,
                 chunks: int | None = None) -> None:
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
        schedule_spec(schedule, "Plan: schedule")  # unknown names fail here, listing them
        v = resolve_chunks(schedule, chunks)
        compute = generate(schedule, mesh.pp, microbatches, v)
        self.config = model_config
        self.mesh = mesh
        self.schedule_name = schedule
        self.microbatches = microbatches
        self.allreduce = allreduce
        self.chunks = v
        self.layers_per_stage = split_layers(model_config.layers, compute.num_stages,
                                             layers_per_stage)
        self.schedule: Schedule = add_communication(compute)
        validate(self.schedule)
        bounds = stage_bounds(self.layers_per_stage)
        self.stages: tuple[StageSpec, ...] = tuple(
            StageSpec(model_config, bounds[s], bounds[s + 1], mesh.tp)
            for s in range(compute.num_stages))

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
            backend: str = "numba") -> PlanResult:
        """Execute every rank's action list on in-process ranks; see the module docs
        (other runtimes: :func:`ringpipe.runtime.run`)."""
        if backend not in PLAN_BACKENDS:
            raise ValueError(f"Plan.run: unknown backend {backend!r}; choose one of "
                             f"{', '.join(PLAN_BACKENDS)}")
        return run(self, params, batch, backend)

    def __repr__(self) -> str:
        return (f"Plan({self.mesh}, schedule={self.schedule_name!r}, microbatches="
                f"{self.microbatches}, chunks={self.chunks}, allreduce={self.allreduce!r}, "
                f"layers_per_stage={list(self.layers_per_stage)})")
