"""The ``ringpipe`` command line.

Each subcommand lives in its own module under ``ringpipe.cli`` and exposes
``register(subparsers) -> None``, which adds its parser and sets ``handler`` to a
function ``(argparse.Namespace) -> int``. Conventions every subcommand follows:

* ``--json`` prints machine-readable output;
* exit 0 on success, 1 on a failed check;
* exit 2 on bad arguments, with a one-line error on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Subcommand modules, in the order ``ringpipe --help`` lists them.
SUBCOMMAND_MODULES: tuple[str, ...] = ("demo", "schedule", "verify", "plan", "bench")


class UsageError(Exception):
    """Bad command-line input: reported on one line, exit status 2."""


class _OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every subcommand registered."""
    parser = _OneLineParser(
        prog="ringpipe",
        description="Tensor- and pipeline-parallel collectives, schedules and plans.",
    )
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_OneLineParser
    )
    subparsers.required = True
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"ringpipe.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ringpipe`` console script; returns the exit status."""
    parser = build_parser()
    args: argparse.Namespace | None = None
    try:
        args = parser.parse_args(argv)
        return int(args.handler(args))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (TypeError, ValueError) as exc:
        # Library argument checks surface as one-line usage errors.
        where = f"ringpipe {args.command}" if args is not None else "ringpipe"
        print(f"error: {where}: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        if 'ringpipe[' not in str(exc):  # not a missing extra: a real failure, keep it
            raise
        # an optional extra (gpu, mpi, plot) that is not installed: say which
        where = f"ringpipe {args.command}" if args is not None else "ringpipe"
        print(f"error: {where}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
