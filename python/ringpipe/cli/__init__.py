"""The ``ringpipe`` command line.

Each subcommand lives in its own module under ``ringpipe.cli`` and exposes
``register(subparsers) -> None``, which adds its parser and sets ``handler`` to a
function ``(argparse.Namespace) -> int``. Conventions every subcommand follows:

* ``--json`` prints machine-readable output;
* exit 0 on success, 1 on a failed check;
* exit 2 on bad arguments (including work over a :mod:`ringpipe.limits` bound,
  :mod:`ringpipe.cli.limits`), with a one-line error on stderr;
* never a Python traceback: any other exception becomes one line ``error: ringpipe
  COMMAND: internal error: <Type>: <message>`` and exit 1; Ctrl-C prints
  ``interrupted`` and exits 130; a closed stdout (``ringpipe demo | head``) ends quietly
  with 141 (128 + SIGPIPE, as a shell reports it). ``ringpipe --debug COMMAND`` or
  ``RINGPIPE_DEBUG=1`` prints the traceback as well.

:func:`main` reads the environment once (:class:`ringpipe.environment.Environment`) and
hands it to the subcommand as ``args.env``: nothing below the command line reads it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from ringpipe import __version__
from ringpipe.cli.limits import check_command
from ringpipe.environment import DEBUG_VAR, LIMITS_VAR, TIMEOUT_VAR, Environment

#: Environment variable that turns on ``--debug`` (tracebacks on errors).
#: Exit statuses besides 0 (ok), 1 (failed check) and 2 (bad arguments).
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

#: Subcommand modules, in the order ``ringpipe --help`` lists them.
SUBCOMMAND_MODULES: tuple[str, ...] = ("demo", "schedule", "verify", "plan", "bench",
                                      "calibrate", "cluster")


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
        epilog="exit status: 0 ok, 1 a failed check, 2 bad arguments. environment: "
               f"{DEBUG_VAR}=1 prints tracebacks; {LIMITS_VAR}=name=value,... raises the "
               f"work limits (ringpipe.limits); {TIMEOUT_VAR}=SECONDS sets the MPI "
               "jobs' default --timeout (900).",
    )
    parser.add_argument("--version", action="version", version=f"ringpipe {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help=f"print Python tracebacks on errors (also {DEBUG_VAR}=1)")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_OneLineParser,
        help="run `ringpipe COMMAND --help` for its options"
    )
    subparsers.required = True
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"ringpipe.cli.{name}").register(subparsers)
    return parser


def _quiet_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush cannot raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real fd (e.g. captured in tests)
        pass


def _describe(exc: BaseException, where: str) -> tuple[str, int]:
    """The one-line message and the exit status for an exception out of a command."""
    if isinstance(exc, UsageError):
        return str(exc), 2
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPTED
    if isinstance(exc, (TypeError, ValueError, OSError)):  # argument checks, named files
        return f"{where}: {exc}", 2
    if isinstance(exc, ImportError) and "ringpipe[" in str(exc):  # a missing extra
        return f"{where}: {exc}", 2
    if isinstance(exc, MemoryError):
        return f"{where}: out of memory; ask for less work (see ringpipe.limits)", 2
    return f"{where}: internal error: {type(exc).__name__}: {exc}", 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ringpipe`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    where = "ringpipe"
    env: Environment | None = None
    try:
        env = Environment.read()
        parser = build_parser()
        args = parser.parse_args(argv)
        where = f"ringpipe {args.command}"
        args.env = env
        check_command(args, env.limits)
        status = int(args.handler(args))
        sys.stdout.flush()  # a closed pipe surfaces here, not at interpreter exit
        return status
    except SystemExit:
        raise
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except BaseException as exc:  # noqa: BLE001 - the CLI never shows a raw traceback
        message, status = _describe(exc, where)
        if "--debug" in argv or (env is not None and env.debug):
            traceback.print_exception(exc)
        elif status == 1:
            message += f" (run with --debug or {DEBUG_VAR}=1 for the traceback)"
    print(f"error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
