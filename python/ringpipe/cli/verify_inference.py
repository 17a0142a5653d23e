"""``ringpipe verify --inference``: parallel greedy generation against the reference.

    ringpipe verify --inference --tp T --pp P [--dp D] --prompt-len L --new-tokens K \\
        --batch B [--kv-heads KV] [--backend numpy|numba|mpi --np N] [--json]

Prints ``ok``, ``tokens_equal``, ``max_rel_error`` and, per mesh rank, the KV-cache bytes
and the TP all-reduce count. Exit 0 when the tokens are identical and the logits agree
(1e-10 relative in float64), 1 otherwise, 2 on bad arguments. ``--backend mpi`` starts
``mpiexec -n N python -m ringpipe.verify_inference ...`` (N defaults to dp·pp·tp), whose
rank 0 also requires the MPI run to be bitwise the in-process one.
"""

from __future__ import annotations

import argparse
import json

from ringpipe.verify_inference import build_inference, inference_argv, verify_inference

__all__ = ["run_inference"]


def run_inference(args: argparse.Namespace) -> int:
    """Handler of ``ringpipe verify --inference``; returns the exit status."""
    plan, params, prompts = build_inference(args)  # bad arguments exit 2 before any run
    if args.backend == "mpi":
        from ringpipe.mpi.launch import launch
        from ringpipe.mpi.mesh_comm import check_world_size

        nprocs = plan.mesh.world if args.np is None else args.np
        if nprocs < 1:
            raise ValueError(f"--np must be >= 1, got {nprocs}")
        check_world_size(plan.mesh, nprocs)
        try:
            job = launch(nprocs, ["-m", "ringpipe.verify_inference", *inference_argv(args)])
        except (FileNotFoundError, OSError) as exc:
            raise ValueError(f"cannot start mpiexec: {exc}") from None
        return job.returncode
    if args.np is not None:
        raise ValueError("--np only applies to --backend mpi")
    report = verify_inference(plan, params, prompts, args.backend)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(report.format(plan))
    return 0 if report.ok else 1
