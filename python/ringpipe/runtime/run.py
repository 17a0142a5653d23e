"""One entry point for every runtime: ``run(plan, params, inputs, backend=...)``.

A plan (training :class:`~ringpipe.plan.training.Plan`,
:class:`~ringpipe.plan.inference.InferencePlan` or
:class:`~ringpipe.plan.serving.ServingPlan`) lowers to one action list per pipeline
rank; every runtime executes those lists on the one
:class:`~ringpipe.runtime.interpreter.PipelineInterpreter` and differs only in its
transport and group collective:

==========================  ==================================================  ==========
``backend``                 ranks                                               plans
==========================  ==================================================  ==========
``"numpy"``, ``"numba"``    in this process, queues between pipeline ranks      all
``"cupy"``                  in this process, shards and activations on a GPU    training
``"mpi"``                   one process per mesh rank (give ``comm``), MPI      all
==========================  ==================================================  ==========

Training takes a :class:`~ringpipe.runtime.result.Batch` (inputs, targets) and returns a
:class:`~ringpipe.runtime.result.PlanResult`; inference takes ``(B, L)`` prompt ids and
returns an :class:`~ringpipe.runtime.inference.InferenceResult`; a
:class:`~ringpipe.plan.serving.ServingPlan` (continuous batching) takes each request's
prompt ids and returns a :class:`~ringpipe.runtime.batching.inproc.ServingResult`.
Under MPI every process calls ``run`` with the same arguments and its communicator;
rank 0 gets the result, the others None. ``options`` go to the runtime (MPI training:
``device``, ``collectives``; in-process training and inference: ``threads``, the
:class:`~ringpipe.kernels.threads.ThreadPolicy` of the BLAS and Numba pools, default
each rank's fair share of the cores; training, in-process and MPI: ``heap``, the
:class:`~ringpipe.kernels.heap.HeapPolicy` of the step's allocations, default freed
memory kept in the process for the step).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ringpipe.runtime.inference import InferenceResult, run_inprocess_inference
from ringpipe.runtime.inference_mpi import run_inference_mpi
from ringpipe.runtime.inproc import run_inprocess
from ringpipe.runtime.result import PlanResult

__all__ = ["BACKENDS", "run"]

#: Where :func:`run` executes a plan.
BACKENDS = ("numpy", "numba", "cupy", "mpi")


def run(plan: Any, params: dict[str, np.ndarray], inputs: Any,  # noqa: ANN401
        backend: str = "numba", *, comm: Any = None,
        **options: Any) -> PlanResult | InferenceResult | None:
    """Execute ``plan`` on ``backend`` (module docstring); TypeError/ValueError naming
    the argument for a plan, backend or communicator that does not fit."""
    kind = getattr(plan, "kind", None)
    if kind not in ("training", "inference", "serving"):
        raise TypeError(f"run: plan must be a Plan, an InferencePlan or a ServingPlan, got "
                        f"{type(plan).__name__}")
    if backend not in BACKENDS:
        raise ValueError(f"run: unknown backend {backend!r}; choose one of "
                         f"{', '.join(BACKENDS)}")
    if (backend == "mpi") != (comm is not None):
        raise ValueError("run: backend 'mpi' needs comm (an MPI communicator with one "
                         "process per mesh rank), and only it takes one")
    if kind == "training":
        if backend == "mpi":
            from ringpipe.runtime.mpi import run_plan_mpi

            return run_plan_mpi(plan, params, inputs, comm, **options)
        return run_inprocess(plan, params, inputs, backend, **_threads_only(options, heap=True))
    if kind == "serving":  # continuous batching (ringpipe.runtime.batching)
        _no_options(options)
        if backend == "mpi":
            from ringpipe.runtime.batching.mpi import run_serving_mpi

            return run_serving_mpi(plan, params, inputs, comm)
        from ringpipe.runtime.batching.inproc import run_inprocess_serving

        return run_inprocess_serving(plan, params, inputs, backend)
    if backend == "mpi":
        _no_options(options)
        return run_inference_mpi(plan, params, inputs, comm)
    if backend == "cupy":
        raise ValueError("run: inference runs on the CPU backends (numpy, numba) or mpi")
    return run_inprocess_inference(plan, params, inputs, backend, **_threads_only(options))


def _threads_only(options: dict[str, Any], heap: bool = False) -> dict[str, Any]:
    """In-process runtimes take ``threads`` (a ThreadPolicy); training also ``heap`` (a
    HeapPolicy)."""
    _no_options({k: v for k, v in options.items()
                 if k != "threads" and not (heap and k == "heap")})
    return options


def _no_options(options: dict[str, Any]) -> None:
    if options:
        raise TypeError(f"run: this runtime takes no options, got {', '.join(options)}")
