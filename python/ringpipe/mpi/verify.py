"""``python -m ringpipe.mpi verify``: a plan on MPI ranks, checked on rank 0.

Every rank builds the same plan, parameters (``init_params(config, seed)``) and batch
(``random_batch(config, B, seed + 1)``) from the command line, exactly as ``ringpipe
verify`` does, and runs its part with :func:`ringpipe.runtime.mpi.run_plan_mpi`. Rank 0
then compares the gathered loss, outputs and full-shape gradients

* with the single-device reference (:mod:`ringpipe.model.reference`), normwise, to the
  usual tolerance (1e-10 relative in float64, 1e-4 in float32), and
* with the in-process runtime (``plan.run(..., backend="numpy")``): bitwise where the
  BLAS gives equal bits for equal calls, and never further apart than
  :data:`INPROC_TOLERANCES` (1e-12 relative in float64).

The job exits 0 when both hold, 1 otherwise (every rank exits with rank 0's verdict).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from ringpipe.cli.verify import build, format_report
from ringpipe.mpi.loader import load_mpi
from ringpipe.mpi.mesh_comm import check_world_size
from ringpipe.plan import Plan, PlanResult
from ringpipe.verify import compare_to_reference, random_batch, relative_error

#: Largest relative difference allowed between the MPI and the in-process run.
INPROC_TOLERANCES = {"float64": 1e-12, "float32": 1e-6}


def _pairs(a: PlanResult, loss: float, outputs: np.ndarray,
           grads: dict[str, np.ndarray]) -> list[tuple[str, object, object]]:
    pairs: list[tuple[str, object, object]] = [("loss", a.loss, loss),
                                               ("output", a.outputs, outputs)]
    return pairs + [(n, a.grads[n], grads[n]) for n in grads]


def compare_to_inprocess(result: PlanResult, inproc: PlanResult) -> tuple[bool, float]:
    """(bitwise identical?, largest normwise relative difference) of two plan results."""
    bitwise, worst = set(result.grads) == set(inproc.grads), 0.0
    for _, got, want in _pairs(result, inproc.loss, inproc.outputs, inproc.grads):
        g, w = np.asarray(got), np.asarray(want)
        bitwise = bitwise and g.shape == w.shape and g.tobytes() == w.tobytes()
        worst = max(worst, relative_error(g, w)[0])
    return bitwise, worst


def prepare_verify(args: argparse.Namespace) -> Callable[[], int]:
    """Check the arguments on this rank (TypeError/ValueError, alike on every rank, before
    any communication); returns the job, which returns the exit status (rank 0's
    verdict, broadcast)."""
    world = load_mpi().COMM_WORLD
    plan, batch_size = build(args)
    check_world_size(plan.mesh, world.Get_size())
    return lambda: _verify(args, plan, batch_size, world)


def _verify(args: argparse.Namespace, plan: Plan, batch_size: int, world: Any) -> int:
    from ringpipe.model.params import init_params
    from ringpipe.runtime.mpi import run_plan_mpi

    params = init_params(plan.config, args.seed)
    batch = random_batch(plan.config, batch_size, args.seed + 1)
    result = run_plan_mpi(plan, params, batch, world)
    status = 0
    if world.Get_rank() == 0:
        assert result is not None
        report = compare_to_reference(plan, result, params, batch)
        bitwise, diff = compare_to_inprocess(result, plan.run(params, batch, backend="numpy"))
        limit = INPROC_TOLERANCES[plan.config.dtype]
        ok = report.ok and diff <= limit
        if args.json:
            doc = {**report.as_json(), "ok": ok, "backend": "mpi",
                   "processes": world.Get_size(), "bitwise_inproc": bitwise,
                   "inproc_max_rel_diff": diff}
            print(json.dumps(doc, indent=2))
        else:
            same = ("bitwise identical" if bitwise else
                    f"max relative difference {diff:.3e} (tolerance {limit:g})")
            print(format_report(plan, report))
            print(f"# mpi: {world.Get_size()} processes; vs the in-process run: {same}"
                  + ("" if ok else "  MISMATCH"))
        status = 0 if ok else 1
    return int(world.bcast(status, root=0))
