"""``ringpipe demo``: the main job, end to end on one CPU.

1. All-reduce over in-process virtual ranks (ring and tree) over a size sweep, as an
   nccl-tests table, every element checked against an exactly predictable result.
2. A small transformer on TP=2 × PP=2 × DP=2 with 1F1B, run on in-process ranks and
   verified against the single-device NumPy reference, with the schedule's timeline and
   the per-rank counters.

Exits 1 if any all-reduce element is wrong or the plan does not match the reference.
"""

from __future__ import annotations

import argparse
import json

from ringpipe.bandwidth import format_table, size_sweep, time_all_reduce
from ringpipe.checks import BACKENDS
from ringpipe.cli.verify import format_report
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.plan import Plan
from ringpipe.schedules import format_time_grid, simulate
from ringpipe.verify import VerifyReport, verify_plan


def _size(text: str) -> int:
    """Parse ``4096``, ``4K``, ``16M`` or ``1G`` (binary multiples) into bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = units.get(t[-1:], 1)
    digits = t[:-1] if t[-1:] in units else t
    if not digits.isdigit() or int(digits) < 1:
        raise argparse.ArgumentTypeError(f"not a positive size: {text!r}")
    return int(digits) * mult


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    p = subparsers.add_parser("demo", help="all-reduce sweep over virtual ranks "
                                           "(nccl-tests style table)")
    p.add_argument("--ranks", type=int, default=8, help="virtual ranks (default 8)")
    p.add_argument("--min-bytes", type=_size, default=_size("4K"), help="default 4K")
    p.add_argument("--max-bytes", type=_size, default=_size("16M"), help="default 16M")
    p.add_argument("--backend", choices=BACKENDS, default="numba")
    p.add_argument("--iters", type=int, default=5, help="timed runs per size (best kept)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run)


def demo_plan(backend: str) -> tuple[Plan, VerifyReport]:
    """The demo's plan (TP=2 × PP=2 × DP=2, 1F1B, 4 micro-batches), verified."""
    cfg = ModelConfig(layers=4, hidden=32, heads=4, seq=8, vocab=64)
    plan = Plan(cfg, Mesh(dp=2, pp=2, tp=2), schedule="1f1b", microbatches=4)
    return plan, verify_plan(plan, backend=backend)


def format_counters(report: VerifyReport) -> str:
    """One line per mesh rank: coordinates, activations peak, bytes and calls per group."""
    lines = [f"{'rank':>4} {'dp':>2} {'pp':>2} {'tp':>2} {'peak act':>8} "
             f"{'tp bytes':>10} {'pp bytes':>10} {'dp bytes':>10} {'tp calls':>8} {'dp calls':>8}"]
    for c in report.result.counters:
        b, n = c.bytes_sent, c.allreduce_calls
        lines.append(f"{c.rank:>4} {c.dp:>2} {c.pp:>2} {c.tp:>2} {c.peak_activations:>8} "
                     f"{b['tp']:>10} {b['pp']:>10} {b['dp']:>10} {n['tp']:>8} {n['dp']:>8}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the sweep; 0 if every result is exact, else 1."""
    if args.ranks < 1:
        raise ValueError(f"--ranks must be >= 1, got {args.ranks}")
    if args.iters < 1:
        raise ValueError(f"--iters must be >= 1, got {args.iters}")
    sizes = size_sweep(args.min_bytes, args.max_bytes)
    results = {alg: [time_all_reduce(args.ranks, s, alg, backend=args.backend, iters=args.iters)
                     for s in sizes] for alg in ("ring", "tree")}
    wrong = sum(r.wrong for rows in results.values() for r in rows)
    plan, report = demo_plan(args.backend)
    if args.json:
        print(json.dumps({"ranks": args.ranks, "backend": args.backend, "wrong": wrong,
                          "results": {a: [r.as_dict() for r in rows]
                                      for a, rows in results.items()},
                          "plan": {"description": repr(plan), **report.as_json()}}, indent=2))
    else:
        print(f"# ringpipe all_reduce: {args.ranks} in-process ranks, backend={args.backend}, "
              f"float32, in place, best of {args.iters}")
        for alg, rows in results.items():
            print(f"#\n# algorithm: {alg}")
            print(format_table(rows))
        print(f"#\n# {'all results exact' if wrong == 0 else f'{wrong} WRONG elements'}")
        print("\n# ---- a transformer on TP=2 x PP=2 x DP=2, 1F1B, verified against one device")
        print("# schedule (one slot = one forward; a backward takes two):")
        print(format_time_grid(simulate(plan.schedule)))
        print("#\n# per-rank counters:")
        print(format_counters(report))
        print("#")
        print(format_report(plan, report, worst=4))
    return 0 if wrong == 0 and report.ok else 1
