"""Starting a ``verify`` job on MPI ranks from the CLI, shared by ``ringpipe verify`` and
``ringpipe verify --inference`` so that both honour ``--np``, ``--hostfile``,
``--mpiexec-arg`` and ``--timeout`` alike, map the job's status alike, and refuse those
flags alike for in-process runs.
"""

from __future__ import annotations

import argparse
import signal
import sys

from ringpipe.mesh import Mesh

__all__ = ["launch_ranks", "refuse_mpi_only_flags"]


#: Seconds past ``--timeout``, counted from the command's start, at which the launcher
#: kills the job itself: the ranks' own deadline starts once mpiexec has started them and
#: their imports are done (two or three seconds after the command started) and their
#: abort takes about a second; past this, a job that could not end itself is ended.
LAUNCH_GRACE = 4.0


def _hostfile_args(args: argparse.Namespace, mesh: Mesh, nprocs: int) -> list[str]:
    """mpiexec's hostfile flag and path, the placement checked before launch by the
    rules of the mpiexec that will read the file (:mod:`ringpipe.mpi.placement`)."""
    from ringpipe.mpi.launch import HOSTFILE_FLAGS, mpiexec_flavour
    from ringpipe.mpi.placement import check_placement, nodes_from_hostfile, read_hostfile

    flavour = mpiexec_flavour()
    nodes = nodes_from_hostfile(read_hostfile(args.hostfile, flavour), nprocs, flavour)
    if nodes is not None:  # None: Open MPI lines without slots=; the ranks check later
        check_placement(mesh, nodes, args.allow_cross_node_tp)  # refused before launch
    return [HOSTFILE_FLAGS[flavour], args.hostfile]


def launch_ranks(args: argparse.Namespace, mesh: Mesh, rank_argv: list[str]) -> int:
    """Start ``rank_argv`` on ``--np`` (default: the mesh's) ranks, honouring
    ``--hostfile`` (placement checked before launch), ``--mpiexec-arg`` and
    ``--timeout`` (the ranks' watchdog deadline; this launcher's own ends the job
    :data:`LAUNCH_GRACE` seconds later, counted from the command's start,
    ``args.started``); the job's status mapped to the CLI's (shared by ``verify`` and
    ``verify --inference``, so both fail alike)."""
    import subprocess
    import time

    from ringpipe.cli.exits import require_stdout
    from ringpipe.environment import check_timeout
    from ringpipe.mpi.launch import launch
    from ringpipe.mpi.mesh_comm import check_world_size

    nprocs = mesh.world if args.np is None else args.np
    if isinstance(nprocs, int) and nprocs < 1:
        raise ValueError(f"--np must be >= 1, got {nprocs}")
    check_world_size(mesh, nprocs)
    require_stdout()  # mpiexec cannot start on a closed stdout
    extra = list(args.mpiexec_args)
    if args.hostfile is not None:
        extra = [*_hostfile_args(args, mesh, nprocs), *extra]
    timeout = check_timeout("--timeout", args.env.timeout if args.timeout is None
                            else args.timeout)
    start = getattr(args, "started", None) or time.monotonic()  # the command's start
    left = max(timeout + LAUNCH_GRACE - (time.monotonic() - start), 1.0)
    try:
        job = launch(nprocs, [*rank_argv, f"--timeout={timeout!r}"], mpiexec_args=extra,
                     local=args.hostfile is None, timeout=left if timeout else None)
    except subprocess.TimeoutExpired:
        print(f"error: ringpipe verify: the MPI job ran past its --timeout of {timeout:g} s "
              "and did not end itself; stopped mpiexec and every rank", file=sys.stderr)
        return 1
    except (FileNotFoundError, OSError) as exc:
        raise ValueError(f"cannot start mpiexec: {exc}") from None
    if job.returncode not in (0, 2, 130, 141) and timeout \
            and time.monotonic() - start >= timeout:  # the ranks' deadline ended it
        print(f"error: ringpipe verify: the MPI job timed out after {timeout:g} s "
              f"(--timeout {timeout:g}) and was ended", file=sys.stderr)
        return 1
    if job.returncode in (0, 1, 2, 130, 141):  # ours: ok, failed check, bad arguments, ^C
        return job.returncode
    if job.returncode == -signal.SIGPIPE:  # mpiexec wrote to a pipe whose reader is gone
        return 141
    # mpiexec's own failure (Hydra exits 255 on a bad --mpiexec-arg) or a rank killed by
    # a signal: one line, and the CLI's status for a run that failed
    print(f"error: ringpipe verify: the MPI job ended with status {job.returncode} "
          "(mpiexec's messages above)", file=sys.stderr)
    return 1


def refuse_mpi_only_flags(args: argparse.Namespace) -> None:
    """ValueError naming the first flag that only ``--backend mpi`` uses."""
    for flag, given in (("--np", args.np is not None), ("--hostfile", args.hostfile is not None),
                        ("--mpiexec-arg", bool(args.mpiexec_args)),
                        ("--timeout", args.timeout is not None),
                        ("--device cupy", args.device != "cpu"),
                        ("--allreduce nccl", args.allreduce == "nccl")):
        if given:
            hint = ("; for in-process ranks on one GPU use --backend cupy"
                    if flag.startswith(("--device", "--allreduce")) else "")
            raise ValueError(f"{flag} only applies to --backend mpi (one process per "
                             f"rank){hint}")
