"""``python -m ringpipe.mpi {verify,allreduce,calibrate-probe} ...``: the program every rank
runs under ``mpiexec``.

* ``verify``: a TP×PP×DP plan on one process per mesh rank, checked on rank 0 against
  the reference and the in-process runtime (:mod:`ringpipe.cli.ranks.verify`); with
  ``--inference``, greedy generation (:mod:`ringpipe.cli.ranks.verify_inference`);
* ``allreduce``: an nccl-tests style bandwidth table for ring, tree and MPI_Allreduce
  (:mod:`ringpipe.cli.ranks.allreduce`);
* ``calibrate-probe``: the MPI rows of ``ringpipe calibrate``, which starts it
  (:mod:`ringpipe.cli.ranks.calibrate_probe`).

Exit status: 0 success; 1 a failed check, a rank that raised or a rank past its
``--timeout`` (it prints ``rank R: <error>`` and the whole job is aborted, see
:mod:`ringpipe.mpi.guard` and :mod:`ringpipe.mpi.watchdog`); 2 bad arguments.

Before any communication every rank parses its command line, checks it against
:mod:`ringpipe.cli.limits` and builds the plan, alone; the ranks then agree collectively
(one ``allgather`` of each rank's outcome and command line), so a failure that only
one rank sees, or ranks started with different arguments (``mpiexec -n 1 ... --hidden
32 : -n 3 ... --hidden 16``), still ends every rank with status 2 and rank 0 prints
``error: python -m ringpipe.mpi: rank R: <error>`` once. Then every rank prepares its
job (which may communicate, e.g. to find its node) and the ranks agree again.
``--timeout SECONDS`` (default ``RINGPIPE_TIMEOUT`` or 900; 0 = none) is the deadline of
the whole rank: the watchdog starts before ``MPI_Init`` (the value is read from the
command line ahead of the parse) and runs until ``MPI_Finalize`` has returned, so a peer
stopped at any point, the start and the end included, cannot hang this rank
(:mod:`ringpipe.mpi.watchdog`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ringpipe.cli.args.plan import (
    add_inference_arguments,
    add_plan_arguments,
    build_inference,
    build_plan,
)
from ringpipe.cli.limits import check_command
from ringpipe.cli.ranks import allreduce, calibrate_probe
from ringpipe.cli.ranks.verify import prepare_verify
from ringpipe.cli.ranks.verify_inference import prepare_inference
from ringpipe.cli.verify.inference import check_verify_mode
from ringpipe.environment import DEFAULT_TIMEOUT, TIMEOUT_VAR, Environment, check_timeout
from ringpipe.mpi.guard import run_guarded
from ringpipe.mpi.loader import load_mpi
from ringpipe.mpi.mesh_comm import check_world_size
from ringpipe.mpi.watchdog import Watchdog


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")


def _add_timeout(p: argparse.ArgumentParser, default: float) -> None:
    p.add_argument("--timeout", type=float, default=default, metavar="SECONDS",
                   help=f"abort the whole job after SECONDS (default ${TIMEOUT_VAR} or "
                        f"{DEFAULT_TIMEOUT:g}; 0: no deadline)")


def build_parser(env: Environment) -> argparse.ArgumentParser:
    """The rank-side command line (``env``: the defaults the environment sets)."""
    parser = _Parser(prog="python -m ringpipe.mpi",
                     description="ringpipe on MPI ranks (start with mpiexec -n N)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    verify = sub.add_parser("verify", help="verify a plan on MPI ranks")
    add_plan_arguments(verify)
    add_inference_arguments(verify)  # verify --inference
    bandwidth = sub.add_parser("allreduce", help="all-reduce bandwidth table")
    allreduce.add_arguments(bandwidth)
    probe = sub.add_parser("calibrate-probe",
                           help="the MPI rows of ringpipe calibrate (it starts this itself)")
    calibrate_probe.add_arguments(probe)
    for p in (verify, bandwidth, probe):
        _add_timeout(p, env.timeout)
    return parser


#: What one rank found before the job: (exit status or None to go on, message).
Outcome = tuple[int | None, str]


def _outcome(exc: BaseException) -> Outcome:
    """The outcome of a rank whose preparation raised ``exc``."""
    if isinstance(exc, (_UsageError, TypeError, ValueError, ImportError)):
        return 2, str(exc)  # ImportError: a missing extra, e.g. --device cupy without CuPy
    if isinstance(exc, SystemExit):  # --help
        return (0 if exc.code in (0, None) else 2), ""
    return 1, f"{type(exc).__name__}: {exc}"


def _parse(argv: list[str], rank: int, size: int
           ) -> tuple[Outcome, Any, float, Environment]:  # noqa: ANN401
    """Read the environment, parse and check on this rank alone, without any
    communication (phase 1)."""
    timeout, env = DEFAULT_TIMEOUT, Environment()
    quiet = contextlib.redirect_stdout(io.StringIO()) if rank else contextlib.nullcontext()
    try:
        env = Environment.read()
        timeout = env.timeout
        with quiet:
            args = build_parser(env).parse_args(argv)
        timeout = check_timeout("--timeout", args.timeout)
        check_command(args, env.limits)
        if args.command == "verify":
            check_verify_mode(args)  # the other mode's flags, as the CLI refuses them
            mesh = build_inference(args)[0].mesh if args.inference else build_plan(args)[0].mesh
            check_world_size(mesh, size)
        return (None, ""), args, timeout, env
    except BaseException as exc:  # noqa: BLE001 - reported collectively, never a hang
        return _outcome(exc), None, timeout, env


#: The job of each rank-side command: (arguments, environment) -> the job.
_PREPARE = {"verify": prepare_verify, "allreduce": allreduce.prepare,
            "calibrate-probe": calibrate_probe.prepare}


def _prepare(args: argparse.Namespace,
             env: Environment) -> tuple[Outcome, Callable[[], int] | None]:
    """Prepare the job (phase 2: may communicate, e.g. to find each rank's node)."""
    try:
        prepare = _PREPARE[args.command]
        if args.command == "verify" and args.inference:
            prepare = prepare_inference
        return (None, ""), prepare(args, env)
    except BaseException as exc:  # noqa: BLE001 - reported collectively, never a hang
        return _outcome(exc), None


def _agree(world: Any, outcome: Outcome, argv: list[str]) -> int | None:  # noqa: ANN401
    """Every rank's outcome and argv (one allgather); the common exit status, or None
    when every rank may start. Rank 0 prints the first problem."""
    everyone = world.allgather((outcome, argv))
    problems = [(r, o) for r, (o, _) in enumerate(everyone) if o[0] is not None]
    status, message = None, ""
    if problems:
        status = max(o[0] for _, o in problems)
        messages = {o[1] for _, o in problems}
        rank, (_, text) = next(((r, o) for r, o in problems if o[1]), problems[0])
        alike = len(problems) == len(everyone) and len(messages) == 1
        message = text if alike or not text else f"rank {rank}: {text}"
    else:
        differ = [r for r, (_, a) in enumerate(everyone) if a != everyone[0][1]]
        if differ:
            r = differ[0]
            status, message = 2, (f"rank {r}: started with different arguments than rank 0 "
                                  f"({' '.join(everyone[r][1])!r} vs "
                                  f"{' '.join(everyone[0][1])!r}); every rank needs the "
                                  "same command line")
    if message and world.Get_rank() == 0:
        print(f"error: python -m ringpipe.mpi: {message}", file=sys.stderr)
    return status


def _early_timeout(argv: list[str], default: float) -> float:
    """``--timeout``'s value read from ``argv`` before parsing, so that the watchdog
    covers ``MPI_Init`` too; ``default`` when absent or malformed (the parse then
    refuses a malformed one, exit 2)."""
    for i, arg in enumerate(argv):
        if arg == "--timeout" and i + 1 < len(argv):
            text = argv[i + 1]
        elif arg.startswith("--timeout="):
            text = arg.partition("=")[2]
        else:
            continue
        try:
            return check_timeout("--timeout", float(text))
        except ValueError:
            return default
    return default


def _environment() -> Environment:
    try:
        return Environment.read()
    except ValueError:  # reported by _parse, collectively
        return Environment()


def _flush() -> None:
    """Flush stdout before ``MPI_Finalize`` (a rank that the finalize deadline ends
    exits without Python's own flush); a reader gone away is not this rank's failure."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Start the watchdog, initialise MPI; check every rank's arguments alone, agree;
    prepare (collectively), agree; run the job under the abort guard; finalize MPI, the
    watchdog still running (module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    early = _environment()
    watchdog = Watchdog.start(None, _early_timeout(argv, early.timeout), early.launcher)
    with watchdog.blocking():  # MPI_Init waits for every rank, holding the GIL
        mpi = load_mpi()
    world = mpi.COMM_WORLD
    watchdog.attach(world)
    try:
        outcome, args, timeout, env = _parse(argv, world.Get_rank(), world.Get_size())
        watchdog.set_timeout(timeout)
        status = _agree(world, outcome, argv)
        if status is not None:
            return status
        outcome, job = _prepare(args, env)
        status = _agree(world, outcome, argv)
        if status is not None or job is None:
            return 0 if status is None else status
        return int(run_guarded(job, env.debug))
    finally:
        _flush()
        watchdog.finalize(mpi)


if __name__ == "__main__":
    sys.exit(main())
