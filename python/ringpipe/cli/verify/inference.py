"""``ringpipe verify --inference``: parallel greedy generation against the reference.

    ringpipe verify --inference --tp T --pp P [--dp D] --prompt-len L --new-tokens K \\
        --batch B [--kv-heads KV] [--backend numpy|numba|mpi --np N] [--json]
    ringpipe verify --inference --requests N --rate R ...   (continuous batching:
        ringpipe.cli.verify.serving)

Prints ``ok``, ``tokens_equal``, ``max_rel_error`` and, per mesh rank, the KV-cache bytes
and the TP all-reduce count. Exit 0 when the tokens are identical and the logits agree
(1e-10 relative in float64), 1 otherwise, 2 on bad arguments. ``--backend mpi`` starts
``mpiexec -n N python -m ringpipe.mpi verify --inference ...`` (N defaults to dp·pp·tp),
whose rank 0 also requires the MPI run to be bitwise the in-process one; it honours
``--np``, ``--hostfile``, ``--mpiexec-arg`` and ``--timeout`` as plain ``verify
--backend mpi`` does and maps the job's status the same way. ``--cluster-file``,
``--device cupy`` and ``--allreduce nccl`` are refused (exit 2), as the other training
flags are; plain ``verify`` refuses ``--prompt-len``, ``--new-tokens`` and ``--kv-heads``
alike (:data:`VERIFY_MODE_FLAGS`).
"""

from __future__ import annotations

import argparse
import json

from ringpipe.cli.args.plan import (
    DEFAULT_NEW_TOKENS,
    DEFAULT_PROMPT_LEN,
    DEFAULT_SCHEDULE,
    DEFAULT_SEQ,
    DEFAULT_SPLIT,
    build_inference,
    inference_argv,
)
from ringpipe.cli.args.serving import SERVING_FLAGS, check_serving_flags
from ringpipe.cli.modes import INFERENCE, TRAINING, ModeFlag, check_mode
from ringpipe.cli.verify.mpi_job import launch_ranks, refuse_mpi_only_flags
from ringpipe.verify.inference import verify_inference

__all__ = ["VERIFY_MODE_FLAGS", "check_verify_mode", "run_inference"]


#: ``ringpipe verify``'s flags of one mode (:mod:`ringpipe.cli.modes`), each refused in
#: the other with why; shared with the ranks' ``python -m ringpipe.mpi verify``.
VERIFY_MODE_FLAGS = (
    ModeFlag("--seq", "seq", TRAINING, "a generated sequence is --prompt-len prompt tokens "
             "plus --new-tokens ones", DEFAULT_SEQ),
    ModeFlag("--schedule", "schedule", TRAINING, "generation runs the prefill and decode "
             "schedules", DEFAULT_SCHEDULE),
    ModeFlag("--stages-per-rank", "chunks", TRAINING, "the decode schedule has one chunk "
             "per token step"),
    ModeFlag("--cluster-file", "cluster_file", TRAINING, "no timed prediction of "
             "generation"),
    ModeFlag("--schedule-csv", "schedule_csv", TRAINING, "generation runs the prefill and "
             "decode schedules"),
    ModeFlag("--layout", "layout", TRAINING, "generation splits the layers evenly"),
    ModeFlag("--split", "split", TRAINING, "generation splits the layers evenly",
             DEFAULT_SPLIT),
    *(ModeFlag(flag, dest, INFERENCE, "training verifies --seq-long sequences, without "
               "a KV cache", default)
      for flag, dest, default in (("--prompt-len", "prompt_len", DEFAULT_PROMPT_LEN),
                                  ("--new-tokens", "new_tokens", DEFAULT_NEW_TOKENS),
                                  ("--kv-heads", "kv_heads", None),
                                  ("--requests", "requests", None))),
    *(ModeFlag(flag, dest, INFERENCE, "continuous batching (--requests) is a check of "
               "generation")
      for flag, dest in SERVING_FLAGS[1:]),
)


def check_verify_mode(args: argparse.Namespace) -> None:
    """Refuse the flags of the other mode than ``args.inference``'s, naming the first
    and why, and fill in this mode's defaults (:mod:`ringpipe.cli.modes`); with
    ``--inference``, also what plain verify honours but generation cannot do."""
    check_mode(args, VERIFY_MODE_FLAGS, INFERENCE if args.inference else TRAINING)
    if args.inference:
        check_serving_flags(args)  # --rate and the rest need --requests
    if args.inference and (args.allreduce == "nccl" or args.device != "cpu"):
        flag = "--allreduce nccl" if args.allreduce == "nccl" else f"--device {args.device}"
        raise ValueError(f"{flag} does not apply to --inference (generation runs on the "
                         "CPU; for one GPU use --backend cupy)")


def run_inference(args: argparse.Namespace) -> int:
    """Handler of ``ringpipe verify --inference``; returns the exit status."""
    check_verify_mode(args)  # flags of training verify, named before anything else
    if args.requests is not None:  # continuous batching
        from ringpipe.cli.verify.serving import run_serving

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
