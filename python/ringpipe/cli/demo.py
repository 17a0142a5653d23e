"""``ringpipe demo``: all-reduce over in-process virtual ranks, as an nccl-tests table.

Runs ring and tree all-reduce with the chosen executor over a size sweep, checks every
element of every rank against an exactly predictable result, and prints algbw/busbw.
Exits 1 if any element is wrong.
"""

from __future__ import annotations

import argparse
import json

from ringpipe.bandwidth import format_table, size_sweep, time_all_reduce
from ringpipe.checks import BACKENDS


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
    if args.json:
        print(json.dumps({"ranks": args.ranks, "backend": args.backend, "wrong": wrong,
                          "results": {a: [r.as_dict() for r in rows]
                                      for a, rows in results.items()}}, indent=2))
    else:
        print(f"# ringpipe all_reduce: {args.ranks} in-process ranks, backend={args.backend}, "
              f"float32, in place, best of {args.iters}")
        for alg, rows in results.items():
            print(f"#\n# algorithm: {alg}")
            print(format_table(rows))
        print(f"#\n# {'all results exact' if wrong == 0 else f'{wrong} WRONG elements'}")
    return 0 if wrong == 0 else 1
