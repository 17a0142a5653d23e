"""``ringpipe verify --inference``: parallel greedy generation against the reference.

    ringpipe verify --inference --tp T --pp P [--dp D] --prompt-len L --new-tokens K \\
        --batch B [--kv-heads KV] [--backend numpy|numba|mpi --np N] [--json]
    ringpipe verify --inference --requests N --rate R ...   (continuous batching:
        ringpipe.cli.verify_serving)

Prints ``ok``, ``tokens_equal``, ``max_rel_error`` and, per mesh rank, the KV-cache bytes
and the TP all-reduce count. Exit 0 when the tokens are identical and the logits agree
(1e-10 relative in float64), 1 otherwise, 2 on bad arguments. ``--backend mpi`` starts
``mpiexec -n N python -m ringpipe.mpi verify --inference ...`` (N defaults to dp·pp·tp),
whose rank 0 also requires the MPI run to be bitwise the in-process one; it honours
``--np``, ``--hostfile``, ``--mpiexec-arg`` and ``--timeout`` as plain ``verify
--backend mpi`` does and maps the job's status the same way. ``--cluster-file``,
``--device cupy`` and ``--allreduce nccl`` are refused (exit 2).
"""

from __future__ import annotations

import argparse
import json

from ringpipe.cli.mpi_job import launch_ranks, refuse_mpi_only_flags
from ringpipe.cli.plan_args import DEFAULT_SCHEDULE, DEFAULT_SEQ, build_inference, inference_argv
from ringpipe.verify.inference import verify_inference

__all__ = ["run_inference"]


def _refuse_unsupported(args: argparse.Namespace) -> None:
    """Flags plain ``verify`` honours but generation does not: refused by name (exit 2)
    rather than silently ignored. (``--seq`` and ``--schedule`` are refused when they
    differ from their defaults, which cannot be told apart from not being given.)"""
    for flag, given, why in (
            ("--seq", args.seq != DEFAULT_SEQ,
             "a generated sequence is --prompt-len prompt tokens plus --new-tokens ones"),
            ("--schedule", args.schedule != DEFAULT_SCHEDULE,
             "generation runs the prefill and decode schedules"),
            ("--layout", args.layout is not None, "generation splits the layers evenly"),
            ("--schedule-csv", args.schedule_csv is not None,
             "generation runs the prefill and decode schedules"),
            ("--split", args.split != "even", "generation splits the layers evenly")):
        if given:
            raise ValueError(f"{flag} does not apply to --inference: {why}")
    if args.cluster_file is not None:
        raise ValueError("--cluster-file does not apply to --inference (no timed "
                         "prediction of generation)")
    if args.allreduce == "nccl" or args.device != "cpu":
        flag = "--allreduce nccl" if args.allreduce == "nccl" else f"--device {args.device}"
        raise ValueError(f"{flag} does not apply to --inference (generation runs on the "
                         "CPU; for one GPU use --backend cupy)")


def run_inference(args: argparse.Namespace) -> int:
    """Handler of ``ringpipe verify --inference``; returns the exit status."""
    _refuse_unsupported(args)  # flags plain verify honours, named before anything else
    if args.requests is not None:  # continuous batching
        from ringpipe.cli.verify_serving import run_serving

        return run_serving(args)
    plan, params, prompts = build_inference(args)  # bad arguments exit 2 before any run
    if args.backend == "mpi":
        return launch_ranks(args, plan.mesh,
                            ["-m", "ringpipe.mpi", "verify", *inference_argv(args)])
    refuse_mpi_only_flags(args)
    report = verify_inference(plan, params, prompts, args.backend, args.env.limits)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(report.format(plan))
    return 0 if report.ok else 1
