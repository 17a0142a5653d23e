"""``python -m ringpipe.mpi verify --inference``: greedy generation on MPI ranks.

Every rank builds the same plan, parameters and prompts from the command line
(:func:`~ringpipe.cli.args.plan.build_inference`), runs generation over MPI
(:func:`ringpipe.runtime.inference_mpi.run_inference_mpi`), and rank 0 checks the
reference and, bit for bit, the in-process run (tokens, logits and every counter).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import numpy as np

from ringpipe.cli.args.plan import build_inference
from ringpipe.environment import Environment
from ringpipe.kernels.threads import environment_policy
from ringpipe.mpi.loader import load_mpi
from ringpipe.mpi.mesh_comm import check_world_size
from ringpipe.runtime.inference import run_inprocess_inference
from ringpipe.runtime.inference_mpi import run_inference_mpi
from ringpipe.verify.inference import compare


def prepare_inference(args: argparse.Namespace, env: Environment) -> Callable[[], int]:
    """The MPI ranks' job for ``python -m ringpipe.mpi verify --inference``: build and
    check on this rank (TypeError/ValueError, alike on every rank, reported collectively
    by :mod:`ringpipe.cli.ranks.main`); the job runs generation over MPI and rank 0 checks
    the reference and, bit for bit, the in-process run; returns rank 0's verdict."""
    if args.requests is not None:  # continuous batching
        from ringpipe.cli.ranks.verify_serving import prepare_serving

        return prepare_serving(args, env)
    world = load_mpi().COMM_WORLD
    plan, params, prompts = build_inference(args)
    check_world_size(plan.mesh, world.Get_size())

    def job() -> int:
        result = run_inference_mpi(plan, params, prompts, world,
                                   environment_policy(env.blas_threads))
        status = 0
        if world.Get_rank() == 0:
            assert result is not None
            report = compare(plan, result, params, prompts, limits=env.limits)
            inproc = run_inprocess_inference(plan, params, prompts, "numpy")
            bitwise = (np.array_equal(result.logits, inproc.logits)
                       and np.array_equal(result.tokens, inproc.tokens))
            counters = result.counters == inproc.counters
            ok = report.ok and bitwise and counters
            if args.json:
                print(json.dumps({**report.as_json(), "ok": ok, "backend": "mpi",
                                  "processes": world.Get_size(), "bitwise_inproc": bitwise,
                                  "counters_equal_inproc": counters}, indent=2))
            else:
                print(report.format(plan))
                print(f"# mpi: {world.Get_size()} processes; bitwise equal to the "
                      f"in-process run: {bitwise}; counters equal: {counters}")
            status = 0 if ok else 1
        return int(world.bcast(status, root=0))

    return job
