"""MPI collectives: bitwise equal to the in-process executors, checked on 2 and 4 ranks.

The test functions start ``mpiexec`` on this very file; run as a script (``__main__``),
each rank executes :func:`worker` and rank 0 prints one JSON line. Every rank builds
every rank's input from a seed, so it can compute the in-process result itself
(``ringpipe.all_reduce(..., backend="numpy")``) and compare its own bytes with it.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import ringpipe
from ringpipe.mpi.launch import launch

pytestmark = pytest.mark.mpi

DTYPES = (np.float16, np.float32, np.float64, np.int32, np.int64)
TIMEOUT = 60


def _inputs(n: int, count: int, dtype: type, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        return [rng.integers(-1000, 1000, count).astype(dtype) for _ in range(n)]
    return [(rng.standard_normal(count) * 100).astype(dtype) for _ in range(n)]


def _cases(n: int):
    """(collective, algorithm, op, dtype, count, segment_bytes) combinations."""
    counts = (0, 1, n - 1, 1000, 4099)
    for dtype in DTYPES:
        for count in counts:
            for algorithm in ("ring", "tree"):
                for op in ("sum", "max", "min"):
                    yield "all_reduce", algorithm, op, dtype, count, 64
            yield "all_reduce", "ring", "sum", dtype, count, 0
            yield "all_reduce", "tree", "sum", dtype, count, 1 << 20
            yield "reduce_scatter", "ring", "sum", dtype, count, 32
            yield "all_gather", "ring", "sum", dtype, count, 32


def _check_case(group, n, rank, case, seed) -> str | None:
    collective, algorithm, op, dtype, count, _ = case
    ins = _inputs(n, count, dtype, seed)
    ref = [x.copy() for x in ins]
    if collective == "all_reduce":
        ringpipe.all_reduce(ref, algorithm, backend="numpy", op=op)
        got = group.all_reduce(ins[rank].copy(), algorithm, op)
        out = group.all_reduce(ins[rank], algorithm, op, out=np.empty_like(ins[rank]))
        same = got.tobytes() == ref[rank].tobytes() == out.tobytes()
        same = same and ins[rank].tobytes() == _inputs(n, count, dtype, seed)[rank].tobytes()
    elif collective == "reduce_scatter":
        want = ringpipe.reduce_scatter(ref, algorithm, backend="numpy", op=op)[rank]
        got = group.reduce_scatter(ins[rank].copy(), algorithm, op)
        out = group.reduce_scatter(ins[rank], algorithm, op, out=np.empty_like(want))
        same = got.tobytes() == want.tobytes() == out.tobytes()
    else:
        want = ringpipe.all_gather(ref, algorithm, backend="numpy")[rank]
        got = group.all_gather(ins[rank].copy(), algorithm)
        outs = [np.empty(n * count, dtype) for _ in range(n)]
        ringpipe.all_gather([x.copy() for x in ins], algorithm, backend="numpy", out=outs)
        out = group.all_gather(ins[rank], algorithm, out=np.empty(n * count, dtype))
        same = got.tobytes() == want.tobytes() and out.tobytes() == outs[rank].tobytes()
    return None if same else f"rank {rank}: {case[:3]} {np.dtype(dtype)} count={count}"


def _mpi_baseline(group, n, rank) -> list[str]:
    """algorithm="mpi" (MPI_Allreduce) agrees with the reference (exactly for ints)."""
    bad = []
    for dtype in (np.float32, np.float64, np.int32, np.int64):
        ins = _inputs(n, 777, dtype, 5)
        want = np.sum(np.stack(ins).astype(np.float64), axis=0)
        got = group.all_reduce(ins[rank], "mpi")
        tol = 1e-4 if dtype == np.float32 else 1e-12
        if not np.allclose(got, want, rtol=tol, atol=tol * 100):
            bad.append(f"rank {rank}: mpi {np.dtype(dtype)}")
    return bad


def _mesh_groups(world, rank) -> list[str]:
    """The sub-communicators hold exactly Mesh.group(axis, rank), by coordinate."""
    from ringpipe.mpi.mesh_comm import MeshComm

    n = world.Get_size()
    mesh = ringpipe.Mesh(dp=2, pp=n // 4, tp=2) if n % 4 == 0 else ringpipe.Mesh(pp=n)
    mc = MeshComm(mesh, world)
    bad = []
    for axis, group in (("tp", mc.tp), ("pp", mc.pp), ("dp", mc.dp)):
        members = tuple(group.comm.allgather(rank))
        if members != mesh.group(axis, rank) or group.rank != getattr(mc.coord, axis):
            bad.append(f"rank {rank}: {axis} group {members} != {mesh.group(axis, rank)}")
    mc.free()
    return bad


def _mismatch(group, rank) -> list[str]:
    """Each disagreement makes *every* rank raise, naming rank 1; the group survives."""
    from ringpipe.mpi.group import CollectiveError

    cases = {
        "size": (np.zeros(10 + (rank == 1)), "ring", "sum"),
        "dtype": (np.zeros(10, np.float32 if rank == 1 else np.float64), "ring", "sum"),
        "op": (np.zeros(10), "ring", "max" if rank == 1 else "sum"),
        "algorithm": (np.zeros(10), "tree" if rank == 1 else "ring", "sum"),
        "read-only": (np.zeros(10), "ring", "sum"),
    }
    cases["read-only"][0].flags.writeable = rank != 1
    # an unhashable algorithm or op on one rank is reported, not raised before the
    # agreement round (that left the other ranks waiting)
    cases["unhashable algorithm"] = (np.zeros(10), ["ring"] if rank == 1 else "ring", "sum")
    cases["unhashable op"] = (np.zeros(10), "ring", ["sum"] if rank == 1 else "sum")
    calls = {name: (lambda b=buf, a=algorithm, o=op: group.all_reduce(b, a, o))
             for name, (buf, algorithm, op) in cases.items()}
    # all_gather in place (chunk r of 10) vs with out= (all 10): different messages
    calls["all_gather out"] = lambda: group.all_gather(
        np.zeros(10), out=np.zeros(10 * group.size) if rank == 1 else None)
    calls["collective"] = lambda: (group.reduce_scatter(np.zeros(10)) if rank == 1
                                   else group.all_reduce(np.zeros(10)))
    messages = []
    for name, call in calls.items():
        try:
            call()
        except (CollectiveError, TypeError, ValueError) as exc:
            messages.append(f"{name}: {type(exc).__name__}: {exc}")
        else:
            messages.append(f"{name}: no error")
    return messages


def worker(mode: str) -> None:
    from mpi4py import MPI

    from ringpipe.mpi import ProcessGroup

    world = MPI.COMM_WORLD
    n, rank = world.Get_size(), world.Get_rank()
    group = ProcessGroup(world, name="world")
    doc: dict[str, object] = {}
    if mode == "bitwise":
        cases = list(_cases(n))
        bad = []
        for i, case in enumerate(cases):
            group.segment_bytes = case[5]
            problem = _check_case(group, n, rank, case, seed=i)
            if problem:
                bad.append(problem)
        bad += _mpi_baseline(group, n, rank) + _mesh_groups(world, rank)
        doc = {"cases": len(cases), "failures": sum(world.allgather(bad), [])}
    else:
        doc = {"messages": world.allgather(_mismatch(group, rank))}
    group.free()
    if rank == 0:
        print(json.dumps(doc))


def _run(nprocs: int, mode: str) -> dict:
    job = launch(nprocs, [__file__, mode], timeout=TIMEOUT, capture=True)
    assert job.returncode == 0, job.stderr
    return json.loads(job.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # 20-40 s on 2 cores
@pytest.mark.parametrize("nprocs", [2, 4])
def test_collectives_bitwise_equal_to_inprocess(nprocs):
    doc = _run(nprocs, "bitwise")
    assert doc["failures"] == []
    assert doc["cases"] == len(list(_cases(nprocs))) > 200


def test_disagreeing_ranks_all_raise_naming_the_rank():
    doc = _run(2, "mismatch")
    for rank_messages in doc["messages"]:
        by_case = dict(m.split(": ", 1) for m in rank_messages)
        assert set(by_case) == {"size", "dtype", "op", "algorithm", "read-only",
                                "unhashable algorithm", "unhashable op", "all_gather out",
                                "collective"}
        for text in by_case.values():
            assert "rank 1:" in text, text
        assert "11 elements of float64" in by_case["size"]
        assert "10 elements of float64" in by_case["size"]
        assert "float32" in by_case["dtype"]
        assert "'max'" in by_case["op"] and "'tree'" in by_case["algorithm"]
        assert "read-only" in by_case["read-only"]
        assert "unknown algorithm" in by_case["unhashable algorithm"]
        assert "unknown op" in by_case["unhashable op"]
        assert "(with out=)" in by_case["all_gather out"]
        assert "(in place)" in by_case["all_gather out"]
        assert "reduce_scatter of 10" in by_case["collective"]
        assert "all_reduce of 10" in by_case["collective"]


if __name__ == "__main__":
    worker(sys.argv[1])
