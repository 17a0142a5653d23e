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


def launch_ranks(args: argparse.Namespace, mesh: Mesh, rank_argv: list[str]) -> int:
    """Start ``rank_argv`` on ``--np`` (default: the mesh's) ranks, honouring
    ``--hostfile`` (placement checked before launch), ``--mpiexec-arg`` and
    ``--timeout`` (passed to the ranks' watchdog); the job's status mapped to the CLI's
    (shared by ``verify`` and ``verify --inference``, so both fail alike)."""
    from ringpipe.environment import check_timeout
    from ringpipe.mpi.launch import launch
    from ringpipe.mpi.mesh_comm import check_world_size

    nprocs = mesh.world if args.np is None else args.np
    if isinstance(nprocs, int) and nprocs < 1:
        raise ValueError(f"--np must be >= 1, got {nprocs}")
    check_world_size(mesh, nprocs)
    extra = list(args.mpiexec_args)
    if args.hostfile is not None:
        from ringpipe.mpi.placement import check_placement, nodes_from_hostfile, read_hostfile

        nodes = nodes_from_hostfile(read_hostfile(args.hostfile), nprocs)
        check_placement(mesh, nodes, args.allow_cross_node_tp)  # refused before launch
        extra = ["-f", args.hostfile, *extra]
    deadline = [] if args.timeout is None else [
        "--timeout", repr(check_timeout("--timeout", args.timeout))]
    try:
        job = launch(nprocs, [*rank_argv, *deadline], mpiexec_args=extra,
                     local=args.hostfile is None)
    except (FileNotFoundError, OSError) as exc:
        raise ValueError(f"cannot start mpiexec: {exc}") from None
    if job.returncode in (0, 1, 2, 130, 141):  # ours: ok, failed check, bad arguments, ^C
        return job.returncode
    if job.returncode == -signal.SIGPIPE:  # mpiexec wrote to our closed stdout (| head)
        return 141  # as the in-process run reports it (ringpipe.cli.EXIT_BROKEN_PIPE)
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
