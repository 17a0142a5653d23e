"""A serving plan: requests served with continuous batching on a dp × pp × tp mesh.

:class:`ServingPlan` fixes everything before anything runs, like
:class:`~ringpipe.plan.inference.InferencePlan`: the stages (``split_layers``), each
stage's inference shard shapes, and, per DP replica, the requests it serves (round robin
in arrival order, :func:`~ringpipe.runtime.batching.engine.round_robin`), the iterations
the scheduler forms for them (:func:`~ringpipe.runtime.batching.engine.serve` under
``policy``, timed by ``price``) and the schedule those iterations lower to
(:func:`~ringpipe.schedules.generators.decode.continuous`, with SEND/RECV, validated).

``price`` is the clock the scheduler sees (e.g. the inference cost model of
:mod:`ringpipe.cost.inference.iteration` for a real cluster): it decides which requests
have arrived when each batch is formed, hence which requests share which iterations.
The batches depend only on lengths and arrival times, never on token values, so every
process that builds the plan gets the same iterations.

``plan.run(params, prompts)`` runs it (:func:`ringpipe.runtime.run`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.model.inference_stage import InferenceSpec
from ringpipe.plan.layout import split_layers, stage_bounds
from ringpipe.runtime.batching.engine import OpenLoop, Price, ServingTrace, round_robin, serve
from ringpipe.runtime.batching.policy import BatchingPolicy, Request
from ringpipe.runtime.groups import ALLREDUCE_ALGORITHMS
from ringpipe.runtime.run import run
from ringpipe.schedules import Schedule, add_communication, validate
from ringpipe.schedules.generators.decode import continuous

__all__ = ["ServingPlan"]


class ServingPlan:
    """``config`` × ``mesh`` serving ``requests`` under ``policy``, batches formed on the
    clock ``price`` (module docstring)."""

    #: What :func:`ringpipe.runtime.run` runs.
    kind = "serving"

    def __init__(self, config: ModelConfig, mesh: Mesh, requests: Sequence[Request],
                 policy: BatchingPolicy, price: Price, allreduce: str = "ring") -> None:
        if not isinstance(config, ModelConfig):
            raise TypeError(f"ServingPlan: config must be a ModelConfig, got "
                            f"{type(config).__name__}")
        if not isinstance(mesh, Mesh):
            raise TypeError(f"ServingPlan: mesh must be a Mesh, got {type(mesh).__name__}")
        if not isinstance(policy, BatchingPolicy):
            raise TypeError(f"ServingPlan: policy must be a BatchingPolicy, got "
                            f"{type(policy).__name__}")
        if allreduce not in ALLREDUCE_ALGORITHMS:
            raise ValueError(f"ServingPlan: unknown allreduce {allreduce!r}; choose one of "
                             f"{', '.join(ALLREDUCE_ALGORITHMS)}")
        requests = tuple(requests)
        if not requests or not all(isinstance(r, Request) for r in requests):
            raise TypeError("ServingPlan: requests must be a non-empty sequence of Request")
        ids = sorted(r.id for r in requests)
        if ids != list(range(len(requests))):
            raise ValueError("ServingPlan: request ids must be 0 .. N-1, each once")
        config.check_generates("ServingPlan")
        if mesh.cp > 1 or mesh.ep > 1:
            raise ValueError(f"ServingPlan: the mesh {mesh} has cp={mesh.cp}, ep={mesh.ep}; "
                             "serving runs dp × pp × tp")
        self.config, self.mesh, self.policy, self.allreduce = config, mesh, policy, allreduce
        self.requests = tuple(sorted(requests, key=lambda r: r.id))
        bounds = stage_bounds(split_layers(config.layers, mesh.pp))
        self.specs = tuple(InferenceSpec(config, bounds[p], bounds[p + 1], mesh.tp)
                           for p in range(mesh.pp))
        self.replicas = tuple(tuple(rs) for rs in round_robin(requests, mesh.dp))
        self.traces: tuple[ServingTrace, ...] = tuple(
            serve(policy, OpenLoop(rs), price, mesh.pp) for rs in self.replicas)
        schedules = []
        for trace in self.traces:
            order = [timed.iteration.lane for timed in trace.iterations]
            schedule = add_communication(continuous(mesh.pp, order, trace.lanes))
            validate(schedule)
            schedules.append(schedule)
        self.schedules: tuple[Schedule, ...] = tuple(schedules)

    def __repr__(self) -> str:
        p = self.policy
        return (f"ServingPlan({self.mesh}, requests={len(self.requests)}, "
                f"iterations={sum(len(t.iterations) for t in self.traces)}, block_size="
                f"{p.block_size}, num_blocks={p.num_blocks}, max_batch={p.max_batch}, "
                f"token_budget={p.token_budget}, allreduce={self.allreduce!r})")

    def run(self, params: dict[str, np.ndarray], prompts: object,
            backend: str = "numba") -> object:
        """Serve on in-process ranks (``backend`` numpy or numba):
        :func:`ringpipe.runtime.run`."""
        return run(self, params, prompts, backend)
