"""An inference plan: greedy generation of a model on a dp × pp × tp mesh.

:class:`InferencePlan` fixes everything before anything runs: the stages (the pp
contiguous layer slices of :func:`~ringpipe.plan.layout.split_layers`, as training's),
each stage's inference shard shapes (:class:`~ringpipe.model.inference_stage.InferenceSpec`,
GQA key/value heads split or replicated over TP), and the forward-only decode schedule of
:mod:`ringpipe.schedules.generators.decode` (K token steps unrolled into K·p virtual stages,
step 0 the prompt's prefill, ``groups`` groups of sequences in flight), lowered with
SEND/RECV and validated. DP replicas take contiguous, near-equal slices of the B
prompts, each replica's groups contiguous slices of its own.

``plan.run(params, prompts)`` runs it (:mod:`ringpipe.runtime.inference`).
"""

from __future__ import annotations

import numpy as np

from ringpipe.kernels.steps import chunk_bounds
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.model.inference_stage import InferenceSpec
from ringpipe.plan.layout import split_layers, stage_bounds
from ringpipe.runtime.groups import ALLREDUCE_ALGORITHMS
from ringpipe.runtime.inference import InferenceResult
from ringpipe.runtime.run import run
from ringpipe.schedules import Schedule, add_communication, validate
from ringpipe.schedules.generators.decode import decode
from ringpipe.validation import check_int

__all__ = ["InferencePlan"]


class InferencePlan:
    """``config`` × ``mesh``: generate ``new_tokens`` after each of ``batch`` prompts of
    ``prompt_len`` tokens, ``groups`` groups per replica in flight (default: pp, or
    fewer when a replica has fewer sequences)."""

    #: What :func:`ringpipe.runtime.run` runs: generation (a training :class:`Plan` is
    #: ``"training"``).
    kind = "inference"

    def __init__(self, config: ModelConfig, mesh: Mesh, batch: int, prompt_len: int,
                 new_tokens: int, groups: int | None = None, allreduce: str = "ring") -> None:
        if not isinstance(config, ModelConfig):
            raise TypeError(f"InferencePlan: config must be a ModelConfig, "
                            f"got {type(config).__name__}")
        if not isinstance(mesh, Mesh):
            raise TypeError(f"InferencePlan: mesh must be a Mesh, got {type(mesh).__name__}")
        if mesh.cp > 1 or mesh.ep > 1:
            raise ValueError(f"InferencePlan: the mesh {mesh} has cp={mesh.cp}, ep={mesh.ep}; "
                             "inference runs dp × pp × tp (context and expert parallelism "
                             "are for training plans)")
        if allreduce not in ALLREDUCE_ALGORITHMS:
            raise ValueError(f"InferencePlan: unknown allreduce {allreduce!r}; choose one of "
                             f"{', '.join(ALLREDUCE_ALGORITHMS)}")
        config.check_generates("InferencePlan")
        self.config, self.mesh, self.allreduce = config, mesh, allreduce
        self.prompt_len = check_int("InferencePlan: prompt_len", prompt_len)
        self.new_tokens = check_int("InferencePlan: new_tokens", new_tokens)
        self.batch = check_int("InferencePlan: batch", batch, mesh.dp)
        smallest = batch // mesh.dp
        self.groups = check_int("InferencePlan: groups",
                                min(mesh.pp, smallest) if groups is None else groups,
                                1, smallest)
        bounds = stage_bounds(split_layers(config.layers, mesh.pp))
        self.specs = tuple(InferenceSpec(config, bounds[p], bounds[p + 1], mesh.tp)
                           for p in range(mesh.pp))
        self.schedule: Schedule = add_communication(decode(mesh.pp, self.groups, new_tokens))
        validate(self.schedule)

    @property
    def capacity(self) -> int:
        """KV-cache positions per sequence: L + K - 1."""
        return self.prompt_len + self.new_tokens - 1

    def replica_rows(self, d: int) -> tuple[int, int]:
        """Rows ``[start, stop)`` of the B prompts that replica d serves."""
        b = chunk_bounds(self.batch, self.mesh.dp)
        return int(b[d]), int(b[d + 1])

    def group_rows(self, replica_batch: int) -> list[tuple[int, int]]:
        """Each group's rows ``[start, stop)`` within a replica's prompts."""
        b = chunk_bounds(replica_batch, self.groups)
        return [(int(b[g]), int(b[g + 1])) for g in range(self.groups)]

    def __repr__(self) -> str:
        return (f"InferencePlan({self.mesh}, batch={self.batch}, prompt_len="
                f"{self.prompt_len}, new_tokens="
                f"{self.new_tokens}, groups={self.groups}, allreduce={self.allreduce!r})")

    def run(self, params: dict[str, np.ndarray], prompts: np.ndarray,
            backend: str = "numba") -> InferenceResult:
        """Generate on in-process ranks (``backend`` numpy, numba or cupy):
        :func:`ringpipe.runtime.run`."""
        return run(self, params, prompts, backend)
