"""NCCL between GPUs over MPI: the ``--np N`` rows of ``ringpipe calibrate --backend cupy``.

:func:`measure_nccl` starts ``mpiexec -n N python -m ringpipe.mpi calibrate-probe --nccl
...`` (``-f HOSTFILE`` across nodes), as the CPU probe does
(:mod:`ringpipe.measure.calibrate.mpi_probe`), and reads rank 0's JSON line. On every
rank :func:`probe_nccl` picks its node-local GPU (:func:`ringpipe.runtime.device.
select_device`), builds one NCCL communicator over the job as NCCL documents for MPI
programs (rank 0's ``ncclGetUniqueId`` broadcast over MPI; :class:`ringpipe.runtime.
device.NcclGroup`), and times, as nccl-tests does, the mean over ``iters`` back-to-back
calls after warm-ups, of

* all-reduce (``size`` bytes per rank, float32, sum),
* all-gather (``size`` bytes gathered, size/N per rank),
* send/receive (each rank sends ``size`` bytes to rank r+1 and receives from r-1, in one
  NCCL group), the pattern of ``sendrecv_perf``;

the slowest rank's time counts. The result is a list of nccl-tests-like runs
(:func:`runs_from_probe`), fitted and kept exactly as logs are
(:mod:`ringpipe.measure.nccltests`): links per tier and measured tables.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ringpipe.measure.calibrate.mpi_probe import mpi_unavailable, run_probe_job
from ringpipe.measure.nccltests.parse import NcclTestsRow, NcclTestsRun, busbw_factor

__all__ = ["measure_nccl", "probe_nccl", "runs_from_probe"]

COLLECTIVES = ("all_reduce", "all_gather", "send_recv")
_TESTS = {"all_reduce": "all_reduce_perf", "all_gather": "all_gather_perf",
          "send_recv": "sendrecv_perf"}


def _timed(world: Any, stream: Any, call: Any, iters: int, warmup: int = 3) -> float:  # noqa: ANN401
    """Slowest rank's mean seconds per ``call`` over ``iters`` back-to-back calls."""
    for _ in range(warmup):
        call()
    stream.synchronize()
    world.Barrier()
    t0 = time.perf_counter()
    for _ in range(iters):
        call()
    stream.synchronize()
    mine = (time.perf_counter() - t0) / iters
    from ringpipe.mpi.loader import load_mpi

    return float(world.allreduce(mine, op=load_mpi().MAX))


def _calls(cp: Any, nccl: Any, comm: Any, size: int, n: int, rank: int,  # noqa: ANN401
           stream: int) -> list[tuple[str, Any, int]]:
    """(collective, one call, bytes as nccl-tests counts them) for ``size`` bytes."""
    f32 = nccl.NCCL_FLOAT32
    count = max(n, size // 4)
    send = cp.ones(count, dtype=np.float32)
    recv = cp.empty(count, dtype=np.float32)
    piece = max(1, count // n)
    gathered = cp.empty(piece * n, dtype=np.float32)

    def all_reduce() -> None:
        comm.allReduce(send.data.ptr, recv.data.ptr, count, f32, nccl.NCCL_SUM, stream)

    def all_gather() -> None:
        comm.allGather(send.data.ptr, gathered.data.ptr, piece, f32, stream)

    def send_recv() -> None:
        nccl.groupStart()
        comm.send(send.data.ptr, count, f32, (rank + 1) % n, stream)
        comm.recv(recv.data.ptr, count, f32, (rank - 1) % n, stream)
        nccl.groupEnd()

    return [("all_reduce", all_reduce, 4 * count), ("all_gather", all_gather, 4 * piece * n),
            ("send_recv", send_recv, 4 * count)]


def probe_nccl(sizes: Sequence[int], iters: int) -> dict[str, Any] | None:
    """On every rank (under mpiexec): the module docstring's times; rank 0 returns
    ``{"ranks", "nodes", "gpu", "runs": {collective: [[bytes, seconds], ...]}}``."""
    from ringpipe.measure.calibrate.gpu import device_facts, real_gpu_or_refuse
    from ringpipe.mpi.loader import load_mpi
    from ringpipe.mpi.placement import detect_nodes
    from ringpipe.runtime.device import NcclGroup, cupy_device_setup, select_device

    mpi = load_mpi()
    world = mpi.COMM_WORLD
    setup = cupy_device_setup()
    real_gpu_or_refuse("ringpipe calibrate --backend cupy --np", setup.gpu)
    layout = detect_nodes(world, mpi)
    select_device(setup, layout.local_rank)
    cp, nccl = setup.gpu.xp, setup.nccl
    comm = NcclGroup(world, setup).comm
    n, rank = world.Get_size(), world.Get_rank()
    stream = cp.cuda.get_current_stream()
    runs: dict[str, list[list[float]]] = {c: [] for c in COLLECTIVES}
    for size in sizes:
        for name, call, nbytes in _calls(cp, nccl, comm, size, n, rank, stream.ptr):
            runs[name].append([nbytes, _timed(world, stream, call, iters)])
    if rank != 0:
        return None
    return {"ranks": n, "nodes": layout.nodes, "gpu": device_facts(cp)["name"], "runs": runs}


def runs_from_probe(doc: dict[str, Any], source: str) -> tuple[NcclTestsRun, ...]:
    """The probe's times as nccl-tests runs (bus bandwidth by nccl-tests' factors)."""
    out = []
    n, nodes = int(doc["ranks"]), int(doc["nodes"])
    for collective, points in doc["runs"].items():
        rows = []
        for size, seconds in sorted(points):
            alg = size / seconds / 1e9
            rows.append(NcclTestsRow(int(size), float(seconds), alg,
                                     alg * busbw_factor(collective, n)))
        out.append(NcclTestsRun(source, 0, _TESTS[collective], collective, n, nodes,
                                tuple(rows), str(doc.get("gpu", ""))))
    return tuple(out)


def measure_nccl(nprocs: int, sizes: Sequence[int], iters: int, hostfile: str | None = None,
                 timeout: float = 600.0) -> tuple[dict[str, Any] | None, str | None]:
    """(rank 0's measurements, None) or (None, why there are none)."""
    reason = mpi_unavailable()
    if reason is not None:
        return None, reason
    argv = ["-m", "ringpipe.mpi", "calibrate-probe", "--nccl", "--sizes", *map(str, sizes),
            "--repeats", str(iters), "--timeout", f"{timeout:g}"]
    extra = ["-f", hostfile] if hostfile is not None else []
    return run_probe_job("NCCL", nprocs, argv, timeout, mpiexec_args=extra,
                         local=hostfile is None)
