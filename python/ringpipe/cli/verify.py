"""``ringpipe verify``: run a TP×PP×DP plan and the single-device reference, compare.

Exit 0 when the loss, the outputs and every gradient agree within tolerance (1e-10
relative in float64, 1e-4 in float32), 1 on a mismatch, 2 on bad arguments.

``--backend numpy|numba`` runs the plan on in-process ranks; ``--backend cupy`` runs
them on one GPU (shards and activations in GPU memory, results copied back to compare).
``--backend mpi`` runs it on real processes: this command starts ``mpiexec -n NP python
-m ringpipe.mpi verify ...`` with the same plan arguments (:mod:`ringpipe.mpi.verify`),
NP defaulting to the mesh's dp·pp·tp; an ``--np`` that does not match the mesh is
refused (exit 2) before anything starts. The job's exit status is returned.
"""

from __future__ import annotations

import argparse
import json

from ringpipe.checks import COLLECTIVE_BACKENDS
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.plan import ALLREDUCE_ALGORITHMS, Plan
from ringpipe.schedules import SCHEDULES, schedule_spec
from ringpipe.verify import VerifyReport, random_batch, verify_plan

#: Backends: in-process executors (cupy: shards and activations on one GPU), or real
#: processes started with mpiexec.
VERIFY_BACKENDS = (*COLLECTIVE_BACKENDS, "mpi")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``verify`` subcommand."""
    p = subparsers.add_parser("verify", help="check a TP×PP×DP plan against the "
                                             "single-device NumPy reference")
    add_plan_arguments(p)
    p.add_argument("--backend", choices=VERIFY_BACKENDS, default="numba",
                   help="numpy/numba: in-process ranks on the CPU; cupy: in-process ranks "
                        "on one GPU; mpi: one process per rank")
    p.add_argument("--np", type=int, default=None, dest="np",
                   help="with --backend mpi: processes to start (default dp×pp×tp)")
    p.set_defaults(handler=run)


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments that describe a plan, its model, batch and output format (shared
    with ``python -m ringpipe.mpi verify``)."""
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (default 1)")
    p.add_argument("--pp", type=int, default=1, help="pipeline ranks p (default 1)")
    p.add_argument("--dp", type=int, default=1, help="data-parallel degree (default 1)")
    p.add_argument("--schedule", choices=list(SCHEDULES), default="1f1b",
                   help="pipeline schedule (default 1f1b)")
    p.add_argument("--microbatches", type=int, default=None,
                   help="default: the number of pipeline ranks")
    p.add_argument("--chunks", type=int, default=None, help="chunks per rank (interleaved)")
    p.add_argument("--allreduce", choices=ALLREDUCE_ALGORITHMS, default="ring",
                   help="all-reduce algorithm of the TP and DP groups (default ring)")
    p.add_argument("--layers", type=int, default=None, help="default: 2 per stage")
    p.add_argument("--hidden", type=int, default=32, help="model width h (default 32)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    p.add_argument("--seq", type=int, default=8, help="sequence length (default 8)")
    p.add_argument("--vocab", type=int, default=0, help="0: dense inputs, MSE loss")
    p.add_argument("--block", choices=("transformer", "mlp"), default="transformer",
                   help="layer type; mlp: no attention, quicker (default transformer)")
    p.add_argument("--batch", type=int, default=None,
                   help="global batch (default: 2 × dp × microbatches)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="parameters and compute (default float64)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the parameters; the batch uses seed+1 (default 0)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def plan_argv(args: argparse.Namespace) -> list[str]:
    """``args``' plan arguments as a command line again (for the MPI ranks)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_plan_arguments(parser)
    argv: list[str] = []
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if isinstance(action, argparse._StoreTrueAction):
            argv += [action.option_strings[0]] if value else []
        elif value is not None:
            argv += [action.option_strings[0], str(value)]
    return argv


def build(args: argparse.Namespace) -> tuple[Plan, int]:
    """The plan and global batch size the arguments describe (ValueError if invalid)."""
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    mesh = Mesh(dp=args.dp, pp=args.pp, tp=args.tp)
    m = args.microbatches if args.microbatches is not None else args.pp
    stages = args.pp * (args.chunks or schedule_spec(args.schedule).default_chunks)
    layers = args.layers if args.layers is not None else 2 * stages
    cfg = ModelConfig(layers=layers, hidden=args.hidden, heads=args.heads, seq=args.seq,
                      vocab=args.vocab, block=args.block, dtype=args.dtype)
    plan = Plan(cfg, mesh, schedule=args.schedule, microbatches=m, allreduce=args.allreduce,
                chunks=args.chunks)
    batch = args.batch if args.batch is not None else 2 * args.dp * m
    plan.check_batch_size(batch)
    return plan, batch


def format_report(plan: Plan, report: VerifyReport, worst: int | None = None) -> str:
    """Human-readable errors per tensor (or only loss, output and the ``worst`` largest
    gradient errors), then the verdict."""
    lines = [f"# {plan!r}", f"# loss {report.loss:.17g}  reference {report.reference_loss:.17g}",
             f"{'tensor':<32} {'max abs err':>12} {'rel err':>12}"]
    shown = list(report.errors)
    if worst is not None:
        grads = sorted(shown[2:], key=lambda n: -report.errors[n])[:worst]
        shown = shown[:2] + grads
        lines[-1] += f"   (loss, output and the {worst} largest gradient errors)"
    for name in shown:
        rel = report.errors[name]
        lines.append(f"{name:<32} {report.abs_errors[name]:>12.3e} {rel:>12.3e}")
    verdict = "OK" if report.ok else "MISMATCH"
    lines.append(f"# {verdict}: max relative error {report.max_rel_error:.3e} "
                 f"(tolerance {report.tolerance:g}); peak activations per pipeline rank "
                 f"{report.result.peak_activations}; all-reduce ops "
                 f"{report.result.allreduce_calls}")
    return "\n".join(lines)


def run_mpi(args: argparse.Namespace) -> int:
    """Check the arguments here, then run the ranks under mpiexec; the job's status."""
    from ringpipe.mpi.launch import launch
    from ringpipe.mpi.mesh_comm import check_world_size

    plan, _ = build(args)  # bad plan arguments exit 2 here, before mpiexec starts
    nprocs = plan.mesh.world if args.np is None else args.np
    if isinstance(nprocs, int) and nprocs < 1:
        raise ValueError(f"--np must be >= 1, got {nprocs}")
    check_world_size(plan.mesh, nprocs)
    try:
        job = launch(nprocs, ["-m", "ringpipe.mpi", "verify", *plan_argv(args)])
    except (FileNotFoundError, OSError) as exc:
        raise ValueError(f"cannot start mpiexec: {exc}") from None
    return job.returncode


def run(args: argparse.Namespace) -> int:
    """Verify; 0 if the plan matches the reference, else 1."""
    if args.backend == "mpi":
        return run_mpi(args)
    if args.np is not None:
        raise ValueError("--np only applies to --backend mpi")
    plan, batch_size = build(args)
    report = verify_plan(plan, batch=random_batch(plan.config, batch_size, args.seed + 1),
                         backend=args.backend, seed=args.seed)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(format_report(plan, report))
    return 0 if report.ok else 1
