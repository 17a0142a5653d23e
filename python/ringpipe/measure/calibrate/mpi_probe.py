"""MPI rows of ``ringpipe calibrate``: point-to-point and all-reduce between processes.

:func:`measure_mpi` starts ``mpiexec -n N python -m ringpipe.mpi calibrate-probe ...``
itself (:func:`ringpipe.mpi.launch.launch`, as ``ringpipe verify --backend mpi`` does)
and reads one JSON line from rank 0. Under mpiexec, :func:`probe` measures

* point-to-point: a ping-pong between ranks 0 and 1 with ``Send``/``Recv`` of NumPy
  buffers; one transfer is half a round trip;
* the CPU share: every rank spins at once and reports the share of a core it got
  (:func:`ringpipe.measure.timer.cpu_share`); the smallest of them is what paces P
  ranks that wait on each other's messages on this machine, oversubscription and
  other load included;
* all-reduce: for every group size g = 2..N and algorithm (ring, tree), the step-table
  executor :class:`ringpipe.mpi.group.ProcessGroup` on the first g ranks.

Each is timed *between compute*, as a step meets it: every rank loops over a short
compute chunk (~0.2 ms of GEMMs) followed by the operation, and the operation's cost is
the loop's time per iteration minus that of the compute chunks alone (the slowest
rank's; median of the repeats). On a machine with more runnable processes than cores,
this includes the wait for a descheduled partner at every synchronisation, which a
back-to-back loop of the operation alone hides.

* a whole step: the probe plan :data:`STEP_PROBE` (two blocks of width 2 on one token,
  ``--pp 2``, two micro-batches) through :func:`ringpipe.runtime.mpi.run_plan_mpi` on
  ranks 0 and 1, between barriers, as ``verify --backend mpi`` times a step (the
  slowest rank's; median of the repeats). What it costs beyond what the predictor
  charges for it is what every MPI step pays once, whatever its size (the ranks'
  agreement on their inputs, the barriers, the gather to rank 0):
  ``mpi_step_overhead_us`` (``ringpipe calibrate`` computes it from the other constants).

Without the ``mpi`` extra (no mpi4py or no mpiexec) :func:`measure_mpi` returns None and
the reason, and calibration goes on without MPI rows.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from collections.abc import Sequence
from typing import Any

import numpy as np

from ringpipe.measure.timer import cpu_share, per_call
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.model.params import init_params

ALGORITHMS = ("ring", "tree")
STEP_PROBE = ModelConfig(layers=2, hidden=2, heads=1, seq=1, ffn=2)
STEP_MICROBATCHES = 2


_WORK = np.ones((64, 64))


def _work() -> None:
    """About 0.2 ms of compute: what a rank does between two synchronisations."""
    for _ in range(16):
        _WORK @ _WORK


def _per_sync(comm: Any, fn: Any, repeats: int, iters: int = 12) -> float:
    """Seconds ``fn`` adds to a loop of compute chunks on every rank (slowest rank's
    (compute + fn) minus compute alone, median of ``repeats``)."""
    fn()
    samples = []
    for _ in range(repeats):
        comm.Barrier()
        mixed = per_call(lambda: (_work(), fn()), iters)
        comm.Barrier()
        alone = per_call(_work, iters)
        samples.append(comm.allreduce(mixed - alone, op=_max_op()))
    return max(float(np.median(samples)), 1e-7)


def _max_op() -> Any:
    from ringpipe.mpi.loader import load_mpi

    return load_mpi().MAX


def probe(sizes: Sequence[int], repeats: int) -> dict[str, Any] | None:
    """On every rank of the world (under mpiexec): the measurements of the module
    docstring, returned on rank 0 (None elsewhere)."""
    from ringpipe.mpi.group import ProcessGroup
    from ringpipe.mpi.loader import load_mpi

    world = load_mpi().COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    out: dict[str, Any] = {"ranks": size, "p2p": [], "allreduce": []}
    world.Barrier()
    shares = world.gather(cpu_share(), root=0)
    out["cpu_share"] = min(shares) if rank == 0 else None
    for nbytes in sizes:
        buf = np.ones(max(1, nbytes // 8))

        def pingpong(buf: np.ndarray = buf) -> None:
            if rank == 0:
                world.Send(buf, dest=1, tag=7)
                world.Recv(buf, source=1, tag=8)
            elif rank == 1:
                world.Recv(buf, source=0, tag=7)
                world.Send(buf, dest=0, tag=8)

        out["p2p"].append([nbytes, _per_sync(world, pingpong, repeats) / 2.0])
    for g in range(2, size + 1):
        sub = world.Split(0 if rank < g else 1, rank)
        group = ProcessGroup(sub, name="calibrate") if rank < g else None
        for algorithm in ALGORITHMS:
            rows = []
            for nbytes in sizes:
                buf = np.ones(max(g, nbytes // 8))

                def reduce(buf: np.ndarray = buf, algorithm: str = algorithm,
                           group: Any = group) -> None:
                    if group is not None:
                        buf[...] = 1.0
                        group.all_reduce(buf, algorithm, check=False)

                rows.append([nbytes, _per_sync(world, reduce, repeats)])
            out["allreduce"].append({"algorithm": algorithm, "ranks": g, "points": rows})
        if group is not None:
            group.free()
        sub.Free()
    out["plan_step"] = _plan_step(world, repeats)
    return out if rank == 0 else None


def step_probe_plan() -> Any:
    """The plan whose whole MPI step the probe times (module docstring)."""
    from ringpipe.plan.training import Plan

    return Plan(STEP_PROBE, Mesh(dp=1, pp=2, tp=1), schedule="1f1b",
                microbatches=STEP_MICROBATCHES)


def _plan_step(world: Any, repeats: int) -> dict[str, Any]:
    """Seconds of one step of :func:`step_probe_plan` on ranks 0 and 1 (module
    docstring); the other ranks wait at the barriers."""
    from ringpipe.kernels.heap import HeapPolicy, retained_heap
    from ringpipe.mpi.mesh_comm import MeshComm
    from ringpipe.runtime.mpi import run_plan_mpi
    from ringpipe.verify.training import random_batch

    plan = step_probe_plan()
    params = init_params(STEP_PROBE, 0)
    batch = random_batch(STEP_PROBE, STEP_MICROBATCHES, 1)
    rank = world.Get_rank()
    sub = world.Split(0 if rank < 2 else 1, rank)
    mc = MeshComm(plan.mesh, sub) if rank < 2 else None
    samples = []
    with retained_heap(HeapPolicy()):
        for i in range(2 * repeats + 1):
            step = per_call(lambda: mc is not None and run_plan_mpi(
                plan, params, batch, mesh_comm=mc), sync=world.Barrier)
            if i:
                samples.append(world.allreduce(step, op=_max_op()))
    if mc is not None:
        mc.free()
    sub.Free()
    return {"pp": 2, "microbatches": STEP_MICROBATCHES, "seconds": float(np.median(samples))}


def mpi_unavailable() -> str | None:
    """Why MPI rows cannot be measured here, or None when they can."""
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install 'ringpipe[mpi]'): MPI rows skipped"
    from ringpipe.mpi.launch import find_mpiexec

    try:
        find_mpiexec()
    except FileNotFoundError as exc:
        return f"{exc}: MPI rows skipped"
    return None


def measure_mpi(nprocs: int, sizes: Sequence[int], repeats: int,
                timeout: float = 300.0) -> tuple[dict[str, Any] | None, str | None]:
    """(rank 0's measurements, None) or (None, why MPI rows were skipped)."""
    reason = mpi_unavailable()
    if reason is not None:
        return None, reason
    argv = ["-m", "ringpipe.mpi", "calibrate-probe", "--sizes", *map(str, sizes),
            "--repeats", str(repeats), "--timeout", f"{timeout:g}"]
    return run_probe_job("MPI", nprocs, argv, timeout)


def run_probe_job(what: str, nprocs: int, argv: Sequence[str], timeout: float,
                  **launch_options: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Start ``python argv`` on ``nprocs`` ranks (:func:`ringpipe.mpi.launch.launch`) and
    read rank 0's last JSON line: (it, None), or (None, one line on why not), ``what``
    naming the probe ("MPI", "NCCL")."""
    from ringpipe.mpi.launch import launch

    try:
        job = launch(nprocs, list(argv), timeout=timeout, capture=True, **launch_options)
    except subprocess.TimeoutExpired:
        return None, f"the {what} probe on {nprocs} processes timed out after {timeout:g} s"
    except OSError as exc:
        return None, f"cannot start mpiexec: {exc}"
    lines = [ln for ln in (job.stdout or "").splitlines() if ln.startswith("{")]
    if job.returncode != 0 or not lines:
        tail = (job.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return None, f"the {what} probe failed (exit {job.returncode}): {tail[0]}"
    return json.loads(lines[-1]), None
