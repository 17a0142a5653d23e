"""``ringpipe demo``: the main job, end to end on one CPU.

1. All-reduce over in-process virtual ranks (ring and tree) over a size sweep, as an
   nccl-tests table (out-of-place and in-place columns, ``#`` comment headers, a closing
   ``Avg bus bandwidth`` line), every element checked against an exactly predictable
   result. The ranks compute with their fair share of the cores
   (:class:`~ringpipe.kernels.threads.ThreadPolicy`: cores // ranks threads, at least
   one, or what ``OPENBLAS_NUM_THREADS`` & co. ask). With ``--backend numba`` and more
   than one thread, a collective whose buffers hold at least
   ``KernelTuning.parallel_min_bytes`` (1 MiB) in total runs on Numba's thread pool,
   smaller ones on one thread; the table says at which size that happens, since waking
   the pool shows as a step in the times there (large on a loaded machine).
2. A small transformer on TP=2 × PP=2 × DP=2 with 1F1B, run on in-process ranks and
   verified against the single-device NumPy reference, with the schedule's timeline and
   the per-rank counters.

Exits 1 if any all-reduce element is wrong or the plan does not match the reference.
"""

from __future__ import annotations

import argparse
import json

from ringpipe.cli.verify.command import format_report
from ringpipe.collectives.checks import BACKENDS
from ringpipe.kernels.numba_exec import DEFAULT_TUNING
from ringpipe.kernels.threads import ThreadPolicy, limit_threads
from ringpipe.limits import parse_size
from ringpipe.measure.bandwidth import BandwidthRow, format_table, size_sweep, time_all_reduce
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.plan.training import Plan
from ringpipe.schedules import format_time_grid, simulate
from ringpipe.validation import check_int
from ringpipe.verify.training import VerifyReport, verify_plan


def _size(text: str) -> int:
    """Parse ``4096``, ``4K``, ``16M`` or ``1G`` (binary multiples) into bytes."""
    try:
        value = parse_size("size", text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive size: {text!r} (e.g. 4096, 64K, "
                                         "16M)")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    p = subparsers.add_parser("demo", help="all-reduce sweep over virtual ranks "
                                           "(nccl-tests style table)")
    p.add_argument("--ranks", type=int, default=8, help="virtual ranks (default 8)")
    p.add_argument("--min-bytes", type=_size, default=_size("4K"), metavar="SIZE",
                   help="smallest buffer per rank, e.g. 4096, 64K, 16M (default 4K)")
    p.add_argument("--max-bytes", type=_size, default=_size("16M"), metavar="SIZE",
                   help="largest buffer per rank; sizes grow 4x from --min-bytes "
                        "(default 16M)")
    p.add_argument("--backend", choices=BACKENDS, default="numba",
                   help="numpy: the step-by-step reference; numba: the compiled CPU "
                        "kernel (default)")
    p.add_argument("--iters", type=int, default=5, help="timed runs per size (best kept)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run)


def demo_plan(backend: str) -> tuple[Plan, VerifyReport]:
    """The demo's plan (TP=2 × PP=2 × DP=2, 1F1B, 4 micro-batches), verified."""
    cfg = ModelConfig(layers=4, hidden=32, heads=4, seq=8, vocab=64)
    plan = Plan(cfg, Mesh(dp=2, pp=2, tp=2), schedule="1f1b", microbatches=4)
    return plan, verify_plan(plan, backend=backend)


def format_counters(report: VerifyReport) -> str:
    """One line per mesh rank (``Mesh.coord``: its dp, pp, tp coordinates; the pipeline
    rank of the timeline is its pp): activations peak, bytes and calls per group."""
    lines = [f"{'mesh rank':>9} {'dp':>2} {'pp':>2} {'tp':>2} {'peak act':>8} "
             f"{'tp bytes':>10} {'pp bytes':>10} {'dp bytes':>10} {'tp calls':>8} {'dp calls':>8}"]
    for c in report.result.counters:
        b, n = c.bytes_sent, c.allreduce_calls
        lines.append(f"{c.rank:>9} {c.dp:>2} {c.pp:>2} {c.tp:>2} {c.peak_activations:>8} "
                     f"{b['tp']:>10} {b['pp']:>10} {b['dp']:>10} {n['tp']:>8} {n['dp']:>8}")
    return "\n".join(lines)


def _sweep(args: argparse.Namespace, algorithm: str) -> list[BandwidthRow]:
    with limit_threads(_policy(args)):  # the in-process ranks' fair share of the cores
        return [time_all_reduce(args.ranks, size, algorithm, backend=args.backend,
                                iters=args.iters, in_place=in_place)
                for size in size_sweep(args.min_bytes, args.max_bytes)
                for in_place in (False, True)]


def _policy(args: argparse.Namespace) -> ThreadPolicy:
    return ThreadPolicy.fair_share(args.ranks, requested=args.env.blas_threads)


def _threshold_note(args: argparse.Namespace) -> str:
    policy = _policy(args)
    if policy.numba < 2:
        return (f"# numba: one thread ({policy.reason}): every size runs serially")
    per_rank = -(-DEFAULT_TUNING.parallel_min_bytes // args.ranks)
    return (f"# numba: {policy.numba} threads ({policy.reason}); from {per_rank} B per rank "
            f"({DEFAULT_TUNING.parallel_min_bytes} B in total, "
            "KernelTuning.parallel_min_bytes) the steps run on the thread pool; waking it "
            "shows as a step in the times there")


def run(args: argparse.Namespace) -> int:
    """Run the sweep; 0 if every result is exact, else 1."""
    check_int("--ranks", args.ranks, 1)
    check_int("--iters", args.iters, 1)
    results = {alg: _sweep(args, alg) for alg in ("ring", "tree")}
    wrong = sum(r.wrong for rows in results.values() for r in rows)
    plan, report = demo_plan(args.backend)
    if args.json:
        print(json.dumps({"ranks": args.ranks, "backend": args.backend, "wrong": wrong,
                          "results": {a: [r.as_dict() for r in rows]
                                      for a, rows in results.items()},
                          "plan": {"description": repr(plan), **report.as_json()}}, indent=2))
        return 0 if wrong == 0 and report.ok else 1
    print(f"# ringpipe all_reduce: {args.ranks} in-process ranks, backend={args.backend}, "
          f"float32, sum, best of {args.iters}")
    if args.backend == "numba":
        print(_threshold_note(args))
    for alg, rows in results.items():
        print(f"#\n# algorithm: {alg}")
        print(format_table(rows))
    print(f"#\n# {'all results exact' if wrong == 0 else f'{wrong} WRONG elements'}")
    print("\n# ---- a transformer on TP=2 x PP=2 x DP=2, 1F1B, verified against one device")
    print("# schedule, one row per pipeline rank (one slot = one forward; a backward takes "
          "two):")
    print(format_time_grid(simulate(plan.schedule), row_label="pipeline rank"))
    print("#\n# counters per mesh rank (8 = dp 2 x pp 2 x tp 2; pipeline rank = its pp):")
    print(format_counters(report))
    print("#")
    print(format_report(plan, report, worst=4))
    return 0 if wrong == 0 and report.ok else 1
