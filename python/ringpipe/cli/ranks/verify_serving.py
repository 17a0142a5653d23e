"""``python -m ringpipe.mpi verify --inference --requests N``: continuous batching on MPI.

Every rank builds the same plan (the same iterations: they depend only on lengths and
arrival times), parameters and prompts from the command line
(:func:`~ringpipe.cli.args.serving.build_serving`), serves over MPI
(:func:`ringpipe.runtime.batching.mpi.run_serving_mpi`), and rank 0 checks every request
against its reference and, bit for bit, against the in-process run (tokens, logits and
every counter).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import numpy as np

from ringpipe.cli.args.serving import build_serving
from ringpipe.environment import Environment
from ringpipe.kernels.threads import environment_policy
from ringpipe.mpi.loader import load_mpi
from ringpipe.mpi.mesh_comm import check_world_size
from ringpipe.runtime.batching.inproc import run_inprocess_serving
from ringpipe.runtime.batching.mpi import run_serving_mpi
from ringpipe.verify.serving import compare_serving

__all__ = ["prepare_serving"]


def prepare_serving(args: argparse.Namespace, env: Environment) -> Callable[[], int]:
    """The MPI ranks' job (checks on this rank first, reported collectively by
    :mod:`ringpipe.cli.ranks.main`); returns rank 0's verdict."""
    world = load_mpi().COMM_WORLD
    plan, params, prompts = build_serving(args)
    check_world_size(plan.mesh, world.Get_size())
    by_id = dict(enumerate(prompts))

    def job() -> int:
        result = run_serving_mpi(plan, params, by_id, world,
                                 environment_policy(env.blas_threads))
        status = 0
        if world.Get_rank() == 0:
            assert result is not None
            report = compare_serving(plan, result, params, by_id, limits=env.limits)
            inproc = run_inprocess_serving(plan, params, by_id, "numpy")
            bitwise = all(np.array_equal(a, b) for a, b in zip(result.logits, inproc.logits,
                                                              strict=True))
            counters = result.counters == inproc.counters
            ok = report.ok and bitwise and counters
            if args.json:
                print(json.dumps({**report.as_json(plan), "ok": ok, "backend": "mpi",
                                  "processes": world.Get_size(), "bitwise_inproc": bitwise,
                                  "counters_equal_inproc": counters}, indent=2))
            else:
                print(report.format(plan))
                print(f"# mpi: {world.Get_size()} processes; bitwise_inproc: {bitwise}; "
                      f"counters equal: {counters}")
            status = 0 if ok else 1
        return int(world.bcast(status, root=0))

    return job
