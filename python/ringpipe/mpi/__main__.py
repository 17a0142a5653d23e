"""``python -m ringpipe.mpi {verify,allreduce} ...``: run under ``mpiexec`` (every rank).

* ``verify``: a TP×PP×DP plan on one process per mesh rank, checked on rank 0 against
  the reference and the in-process runtime (:mod:`ringpipe.mpi.verify`);
* ``allreduce``: an nccl-tests style bandwidth table for ring, tree and MPI_Allreduce
  (:mod:`ringpipe.mpi.perf`).

Exit status: 0 success, 1 a failed check or a rank that raised (it prints ``rank R:
<error>`` and the whole job is aborted, see :mod:`ringpipe.mpi.guard`), 2 bad arguments
(rank 0 prints one line; every rank detects them alike and exits 2).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Sequence

from ringpipe.mpi import perf
from ringpipe.mpi.guard import run_guarded
from ringpipe.mpi.loader import load_mpi
from ringpipe.plan_args import add_plan_arguments


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The rank-side command line."""
    parser = _Parser(prog="python -m ringpipe.mpi",
                     description="ringpipe on MPI ranks (start with mpiexec -n N)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    add_plan_arguments(sub.add_parser("verify", help="verify a plan on MPI ranks"))
    perf.add_arguments(sub.add_parser("allreduce", help="all-reduce bandwidth table"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and check the arguments (errors: rank 0 prints one line, every rank exits
    2), then run the job under the abort guard."""
    from ringpipe.mpi.verify import prepare_verify

    rank = load_mpi().COMM_WORLD.Get_rank()
    quiet = contextlib.redirect_stdout(io.StringIO()) if rank else contextlib.nullcontext()
    try:
        with quiet:
            args = build_parser().parse_args(argv)
        prepare = prepare_verify if args.command == "verify" else perf.prepare
        job = prepare(args)
    except (_UsageError, TypeError, ValueError) as exc:
        if rank == 0:
            print(f"error: python -m ringpipe.mpi: {exc}", file=sys.stderr)
        return 2
    return run_guarded(job)


if __name__ == "__main__":
    sys.exit(main())
