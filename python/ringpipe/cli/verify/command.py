"""``ringpipe verify``: run a TP×PP×DP plan and the single-device reference, compare.

Exit 0 when the loss, the outputs and every gradient agree within tolerance (1e-10
relative in float64, 1e-4 in float32), 1 on a mismatch, 2 on bad arguments.

``--backend numpy|numba`` runs the plan on in-process ranks; ``--backend cupy`` runs
them on one GPU (shards and activations in GPU memory, results copied back to compare).
``--backend mpi`` runs it on real processes: this command starts ``mpiexec -n NP python
-m ringpipe.mpi verify ...`` with the same plan arguments (:mod:`ringpipe.cli.ranks.verify`),
NP defaulting to the mesh's dp·pp·tp; an ``--np`` that does not match the mesh is
refused (exit 2) before anything starts. The job's exit status is returned.
"""

from __future__ import annotations

import argparse
import json
import sys

from ringpipe.cli.args.plan import (
    add_inference_arguments,
    add_plan_arguments,
    build_plan,
    calibrated_cluster,
    plan_argv,
)
from ringpipe.cli.verify.mpi_job import launch_ranks, refuse_mpi_only_flags
from ringpipe.collectives.checks import COLLECTIVE_BACKENDS
from ringpipe.cost.hardware.calibration import Calibration
from ringpipe.kernels.threads import ThreadPolicy
from ringpipe.measure.step_time import (
    format_timing,
    mpi_rows_warning,
    thread_warning,
    timed_prediction,
)
from ringpipe.model.params import init_params
from ringpipe.verify.training import format_report, random_batch, verify_plan

__all__ = ["format_report", "register", "run"]

#: Backends: in-process executors (cupy: shards and activations on one GPU), or real
#: processes started with mpiexec.
VERIFY_BACKENDS = (*COLLECTIVE_BACKENDS, "mpi")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``verify`` subcommand."""
    p = subparsers.add_parser("verify", help="check a TP×PP×DP plan against the "
                                             "single-device NumPy reference")
    add_plan_arguments(p)
    add_inference_arguments(p)  # --inference: ringpipe.cli.verify.inference
    p.add_argument("--backend", choices=VERIFY_BACKENDS, default="numba",
                   help="numpy/numba: in-process ranks on the CPU; cupy: in-process ranks "
                        "on one GPU; mpi: one process per rank")
    p.add_argument("--np", type=int, default=None, dest="np",
                   help="with --backend mpi: processes to start (default dp×pp×tp)")
    p.add_argument("--hostfile", default=None,
                   help="with --backend mpi: Hydra hostfile (host[:slots] per line) for "
                        "mpiexec -f; TP groups must fit inside one host")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="with --backend mpi: abort the whole job after SECONDS (default "
                        "$RINGPIPE_TIMEOUT or 900; 0: no deadline)")
    p.add_argument("--mpiexec-arg", action="append", default=[], dest="mpiexec_args",
                   metavar="ARG", help="with --backend mpi: pass ARG to mpiexec (repeat it)")
    p.set_defaults(handler=run)


def run_mpi(args: argparse.Namespace) -> int:
    """Check the arguments here, then run the ranks under mpiexec; the job's status."""
    plan, _ = build_plan(args)  # bad plan arguments exit 2 here, before mpiexec starts
    if args.allreduce == "nccl" and args.device == "cpu":
        raise ValueError("--allreduce nccl needs --device cupy")
    calibrated = calibrated_cluster(args.cluster_file)  # so does an unusable file
    if calibrated is not None:  # the ranks' threads: ringpipe.mpi.launch's fair share
        _warn_threads(ThreadPolicy.fair_share(args.np or plan.mesh.world,
                                              requested=args.env.blas_threads),
                      calibrated[1], args.cluster_file)
        line = mpi_rows_warning(calibrated[1], args.cluster_file)
        if line is not None:
            print(line, file=sys.stderr)
    return launch_ranks(args, plan.mesh, ["-m", "ringpipe.mpi", "verify", *plan_argv(args)])


def _warn_threads(threads: ThreadPolicy, calibration: Calibration, source: str) -> None:
    line = thread_warning(threads.blas, calibration, source)
    if line is not None:
        print(line, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Verify; 0 if the plan matches the reference, else 1."""
    from ringpipe.cli.verify.inference import check_verify_mode, run_inference

    if args.inference:
        return run_inference(args)
    check_verify_mode(args)  # --prompt-len, --new-tokens, --kv-heads: --inference only
    if args.backend == "mpi":
        return run_mpi(args)
    refuse_mpi_only_flags(args)
    plan, batch_size = build_plan(args)
    calibrated = calibrated_cluster(args.cluster_file)
    batch = random_batch(plan.config, batch_size, args.seed + 1)
    report = verify_plan(plan, batch=batch, backend=args.backend, seed=args.seed)
    threads = ThreadPolicy.fair_share(plan.mesh.world, requested=args.env.blas_threads)
    if calibrated is not None:
        _warn_threads(threads, calibrated[1], args.cluster_file)
    timing = None if calibrated is None else timed_prediction(
        plan, init_params(plan.config, args.seed), batch, *calibrated, backend=args.backend,
        threads=threads)
    if args.json:
        print(json.dumps({**report.as_json(), **(timing or {})}, indent=2))
    else:
        print(format_report(plan, report, None if args.verbose else 8))
        if timing:
            print(format_timing(timing))
    return 0 if report.ok else 1
