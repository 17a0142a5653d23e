"""``ringpipe verify --inference --requests N``: continuous batching against the reference.

    ringpipe verify --inference --tp T --pp P [--dp D] --requests N [--rate R] \\
        [--prompt-len L --new-tokens K] [--block-size B --kv-blocks K --max-num-seqs S \\
        --max-num-batched-tokens T] [--cluster C] [--backend numpy|numba|mpi --np N] [--json]

Serves N requests of random lengths arriving at a Poisson rate (:mod:`ringpipe.cli.
serving_args`) with the iteration-level scheduler, through the one interpreter on
in-process ranks, and checks every request's tokens and logits against the single-request
greedy reference (:mod:`ringpipe.verify.serving`). Prints ``ok``, ``tokens_equal``,
``max_rel_error``, how much the batches mixed, and per mesh rank its paged KV-cache bytes
and TP all-reduce count. ``--backend mpi`` runs one process per rank under mpiexec
(:mod:`ringpipe.cli.ranks.verify_serving`), whose rank 0 also requires the MPI run to be
bitwise the in-process one (``bitwise_inproc``). Exit 0 when every request matches, 1
otherwise, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json

from ringpipe.cli.args.plan import inference_argv
from ringpipe.cli.args.serving import build_serving
from ringpipe.cli.verify.mpi_job import launch_ranks, refuse_mpi_only_flags
from ringpipe.verify.serving import verify_serving

__all__ = ["run_serving"]


def run_serving(args: argparse.Namespace) -> int:
    """Handler of ``ringpipe verify --inference --requests N``; returns the exit status."""
    plan, params, prompts = build_serving(args)  # bad arguments exit 2 before any run
    if args.backend == "mpi":
        return launch_ranks(args, plan.mesh,
                            ["-m", "ringpipe.mpi", "verify", *inference_argv(args)])
    if args.backend == "cupy":
        raise ValueError("--backend cupy does not apply to --requests (continuous batching "
                         "runs on the CPU backends or mpi)")
    refuse_mpi_only_flags(args)
    report = verify_serving(plan, params, dict(enumerate(prompts)), args.backend,
                            args.env.limits)
    if args.json:
        print(json.dumps(report.as_json(plan), indent=2))
    else:
        print(report.format(plan))
    return 0 if report.ok else 1
