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
  ``interrupted`` and exits 130, at any moment (:mod:`ringpipe.cli.exits`); a closed
  pipe (``ringpipe demo | head``) ends quietly with 141 (128 + SIGPIPE, as a shell
  reports it), a closed stdout (``>&-``) with one line and 141. ``ringpipe --debug COMMAND`` or
  ``RINGPIPE_DEBUG=1`` prints the traceback as well.

:func:`main` reads the environment once (:class:`ringpipe.environment.Environment`) and
hands it to the subcommand as ``args.env``: nothing below the command line reads it.
"""

from __future__ import annotations

from ringpipe.cli import exits

exits.install_early()  # Ctrl-C from here on: one line, exit 130 (ringpipe.cli.exits)

import argparse  # noqa: E402 - after the Ctrl-C handler
import importlib  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from ringpipe import __version__  # noqa: E402
from ringpipe.cli.exits import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, StdoutClosed  # noqa: E402
from ringpipe.cli.limits import check_command  # noqa: E402
from ringpipe.cli.names.suggest import (  # noqa: E402
    did_you_mean,
    plain_message,
    unknown_flags_message,
)
from ringpipe.environment import DEBUG_VAR, LIMITS_VAR, TIMEOUT_VAR, Environment  # noqa: E402

exits.restore_default()  # main() turns Ctrl-C (KeyboardInterrupt) into exit 130 itself

#: Subcommand modules, in the order ``ringpipe --help`` lists them.
SUBCOMMAND_MODULES: tuple[str, ...] = ("demo", "schedule", "verify", "plan", "bench",
                                      "calibrate", "cluster")


class UsageError(Exception):
    """Bad command-line input: reported on one line, exit status 2."""


class _OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")

    def _check_value(self, action: argparse.Action, value: object) -> None:
        """argparse's choice check, with the closest choice suggested."""
        if action.choices is not None and value not in action.choices:
            guess = did_you_mean(str(value), action.choices)
            hint = f"; did you mean {guess!r}?" if guess else ""
            raise argparse.ArgumentError(action, f"invalid choice: {value!r} (choose from "
                                         f"{', '.join(map(str, action.choices))}){hint}")


def _wanted(argv: Sequence[str] | None) -> tuple[str, ...]:
    """The subcommand modules to import for ``argv``: only the one it names (start-up
    stays fast: ``ringpipe schedule`` never imports the cost model), none for a bare
    ``--version``, every one otherwise (``--help``, a mistyped command)."""
    if argv is None:
        return SUBCOMMAND_MODULES
    words = [a for a in argv if a not in ("--debug",)]
    if words[:1] and words[0] in SUBCOMMAND_MODULES:
        return (words[0],)
    return () if words == ["--version"] else SUBCOMMAND_MODULES


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with every subcommand registered (with ``argv``: only those
    :func:`_wanted` names)."""
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
    for name in _wanted(argv):
        importlib.import_module(f"ringpipe.cli.{name}").register(subparsers)
    return parser


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of subcommand ``command``."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


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
    if isinstance(exc, StdoutClosed):
        return f"{where}: {exc}", EXIT_BROKEN_PIPE
    if isinstance(exc, (TypeError, ValueError, OSError)):  # argument checks, named files
        return f"{where}: {plain_message(str(exc), where)}", 2
    if isinstance(exc, ImportError) and "ringpipe[" in str(exc):  # a missing extra
        return f"{where}: {plain_message(str(exc), where)}", 2
    if isinstance(exc, MemoryError):
        return f"{where}: out of memory; ask for less work (see ringpipe.limits)", 2
    return f"{where}: internal error: {type(exc).__name__}: {exc}", 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ringpipe`` console script; returns the exit status. Called
    without ``argv`` it is the program: it reads ``sys.argv`` and keeps Ctrl-C at one
    line also while the interpreter shuts down (:mod:`ringpipe.cli.exits`)."""
    status = _main(argv)
    if argv is None:
        exits.install_early()
    else:  # called from Python: leave SIGINT as Python's KeyboardInterrupt
        exits.restore_default()
    return status


def _main(argv: Sequence[str] | None) -> int:
    started = time.monotonic()  # --timeout counts from here (ringpipe.cli.verify.mpi_job)
    watch = exits.InterruptWatch.install()  # Ctrl-C is KeyboardInterrupt, and remembered
    exits.guard_stdout()  # >&-: one line and 141 at the first write, no AttributeError
    argv = list(sys.argv[1:] if argv is None else argv)
    where = "ringpipe"
    env: Environment | None = None
    try:
        env = Environment.read()
        parser = build_parser(argv)
        args, extras = parser.parse_known_args(argv)
        where = f"ringpipe {args.command}"
        if extras:  # named with the subcommand, and the closest flag suggested
            raise UsageError(f"{where}: " + unknown_flags_message(
                extras, _subparser(parser, args.command)._option_string_actions))
        args.env, args.started = env, started
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
        if watch.seen and status != EXIT_INTERRUPTED:  # e.g. an import the ^C broke
            message, status = "interrupted", EXIT_INTERRUPTED
        if "--debug" in argv or (env is not None and env.debug):
            traceback.print_exception(exc)
        elif status == 1:
            message += f" (run with --debug or {DEBUG_VAR}=1 for the traceback)"
    one_line = message.replace("\r", "\\r").replace("\n", "\\n")
    print(f"error: {one_line}", file=sys.stderr)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
