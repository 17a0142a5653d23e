"""``python -m ringpipe.mpi allreduce``: the options and the job, on every rank.

The measuring is :mod:`ringpipe.measure.mpi_allreduce` (its docstring describes the
table, the timing and the exchange floor); this module turns the command line into a
call of :func:`~ringpipe.measure.mpi_allreduce.measure` and prints rank 0's table.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import asdict

import numpy as np

from ringpipe.environment import Environment
from ringpipe.kernels.ops import SUPPORTED_OPS
from ringpipe.limits import parse_size
from ringpipe.measure.bandwidth import format_table, size_sweep
from ringpipe.measure.mpi_allreduce import PERSISTENT, Floor, measure
from ringpipe.mpi.group import DEFAULT_SEGMENT_BYTES, MPI_ALGORITHMS, ProcessGroup
from ringpipe.mpi.loader import load_mpi
from ringpipe.validation import check_int


def _size(text: str) -> int:
    """A byte count: ``4096``, ``64K``, ``128M``, ``1G`` (nccl-tests' spelling)."""
    try:
        return parse_size("size", text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 8, 64K, 128M, 1G)"
                                         ) from exc


#: nccl-tests' -o values; ringpipe's step tables reduce with SUPPORTED_OPS.
NCCL_TESTS_OPS = ("sum", "prod", "min", "max", "avg", "all")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``allreduce`` subcommand's options; nccl-tests' short options (``-b -e -f -g
    -o -n``, all_reduce_perf's ``--help``) and long spellings are aliases."""
    p.add_argument("--min-bytes", "-b", "--minbytes", type=_size, default=4 << 10,
                   help="smallest buffer per rank in bytes, e.g. 8, 64K, 1M (default 4096)")
    p.add_argument("--max-bytes", "-e", "--maxbytes", type=_size, default=64 << 20,
                   help="largest buffer per rank in bytes, e.g. 128M, 1G (default 64 MiB)")
    p.add_argument("--factor", "-f", "--stepfactor", type=int, default=4,
                   help="size step factor (default 4)")
    p.add_argument("-g", "--ngpus", type=int, default=1, dest="ngpus",
                   help="GPUs per process: 1 (ringpipe runs one rank per process; start "
                        "more with mpiexec -n)")
    p.add_argument("--op", "-o", choices=NCCL_TESTS_OPS, default="sum",
                   help=f"reduction: {', '.join(SUPPORTED_OPS)} (nccl-tests' prod, avg "
                        "and all are refused)")
    p.add_argument("--algorithms", default="ring,tree,mpi",
                   help="comma-separated, from " + ",".join(MPI_ALGORITHMS["all_reduce"])
                   + " and ring+persistent,tree+persistent (a handle from all_reduce_init)")
    p.add_argument("--dtype", choices=("float32", "float64", "int32", "int64"),
                   default="float32", help="element type (default float32)")
    p.add_argument("--iters", "-n", type=int, default=10,
                   help="back-to-back all-reduces per timing (default 10)")
    p.add_argument("--reps", type=int, default=3,
                   help="timings per size and algorithm, best kept (default 3)")
    p.add_argument("--segment-bytes", type=int, default=DEFAULT_SEGMENT_BYTES,
                   help="pipelining segment of the step-table algorithms "
                        f"(default {DEFAULT_SEGMENT_BYTES})")
    p.add_argument("--out-of-place", action="store_true",
                   help="also time out-of-place all-reduces (out= a second buffer); the "
                        "table's out-of-place columns are n/a without it")
    p.add_argument("--floor", action="store_true",
                   help="also time each step-table algorithm's exchange floor (rounds x "
                        "one dependent exchange of its largest message)")
    p.add_argument("--json", action="store_true", help="one JSON document on rank 0")


def prepare(args: argparse.Namespace, env: Environment) -> Callable[[], int]:
    """Check the arguments (ValueError, alike on every rank); returns the job, which
    measures, prints on rank 0 and returns 1 if any result was wrong."""
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    known = (*MPI_ALGORITHMS["all_reduce"], *PERSISTENT)
    if not algorithms:
        raise ValueError(f"--algorithms: give at least one of {', '.join(known)}")
    for i, alg in enumerate(algorithms):
        if alg not in known:
            raise ValueError(f"--algorithms: unknown algorithm {alg!r}; choose from "
                             f"{', '.join(known)}")
        if alg in algorithms[:i]:
            raise ValueError(f"--algorithms: {alg!r} is listed twice")
    if args.ngpus != 1:
        raise ValueError(f"-g {args.ngpus}: ringpipe runs one rank per process (-g 1); for "
                         f"{args.ngpus} ranks per node start {args.ngpus} processes per node "
                         "with mpiexec")
    if args.op not in SUPPORTED_OPS:
        raise ValueError(f"-o {args.op}: the step tables reduce with "
                         f"{', '.join(SUPPORTED_OPS)}")
    for name in ("iters", "reps", "segment_bytes"):
        check_int("--" + name.replace("_", "-"), getattr(args, name), 1)
    itemsize = np.dtype(args.dtype).itemsize
    check_int(f"--min-bytes (at least one {args.dtype} element)", args.min_bytes, itemsize)
    check_int("--max-bytes", args.max_bytes, args.min_bytes)
    check_int("--factor", args.factor, 2)
    sizes = size_sweep(args.min_bytes, args.max_bytes, args.factor)
    return lambda: _run(args, sizes, algorithms)


def _run(args: argparse.Namespace, sizes: list[int], algorithms: list[str]) -> int:
    mpi = load_mpi()
    group = ProcessGroup(mpi.COMM_WORLD, segment_bytes=args.segment_bytes, name="world")
    floors: list[Floor] | None = [] if args.floor else None
    samples: dict[tuple[int, str], list[float]] = {}
    rows = measure(group, sizes, algorithms, np.dtype(args.dtype), args.iters, args.reps,
                   args.out_of_place, floors, samples, args.op)
    group.free()
    if group.rank == 0:
        if args.json:
            print(json.dumps({"nranks": group.size, "segment_bytes": args.segment_bytes,
                              "iters": args.iters, "reps": args.reps,
                              "rows": [r.as_dict() for r in rows],
                              "floors": [dict(asdict(f), floor_us=f.floor_us)
                                         for f in floors or ()],
                              "samples": [{"size_bytes": size, "algorithm": alg,
                                           "times_us": t}
                                          for (size, alg), t in samples.items()]}))
        else:
            print(f"# all_reduce ({args.op}) over MPI: {group.size} ranks, segment "
                  f"{args.segment_bytes} B, best of {args.reps} x {args.iters} iterations")
            for alg in algorithms:
                print(f"# algorithm {alg}")
                print(format_table([r for r in rows if r.algorithm == alg]))
            for f in floors or ():
                print(f"# floor {f.algorithm} {f.size_bytes} B: {f.rounds} rounds x "
                      f"{f.exchange_us:.2f} us (exchange of {f.message_bytes} B) = "
                      f"{f.floor_us:.2f} us")
    return 1 if any(r.wrong for r in rows) else 0
