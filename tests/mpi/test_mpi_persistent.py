"""Persistent MPI all-reduce (``ProcessGroup.all_reduce_init``): bitwise the one-shot path.

Run as a script under mpiexec by the tests below; rank 0 prints one JSON line.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from ringpipe.mpi.launch import launch

pytestmark = pytest.mark.mpi

TIMEOUT = 90


def worker() -> dict:
    from mpi4py import MPI

    from ringpipe.mpi import ProcessGroup

    world = MPI.COMM_WORLD
    rank, n = world.Get_rank(), world.Get_size()
    group = ProcessGroup(world, segment_bytes=256, name="world")
    mismatches, calls = [], 0
    for dtype in (np.float16, np.float32, np.float64, np.int64):
        for count in (0, 1, n + 1, 1000):
            for algorithm in ("ring", "tree"):
                for op in ("sum", "max", "min"):
                    rng = np.random.default_rng(count * 7 + rank)
                    base = (rng.standard_normal(count) * 50).astype(dtype)
                    bound = base.copy()
                    handle = group.all_reduce_init(bound, algorithm, op)
                    for again in range(3):  # the handle reads the buffer's current contents
                        fresh = (base + again).astype(dtype)
                        bound[...] = fresh
                        handle()
                        want = group.all_reduce(fresh.copy(), algorithm, op)
                        calls += 1
                        if bound.tobytes() != want.tobytes():
                            mismatches.append([str(np.dtype(dtype)), count, algorithm, op])
                    handle.free()
    errors = []
    try:
        group.all_reduce_init(np.ones(4), "mpi")
    except ValueError as exc:
        errors.append(str(exc))
    try:  # rank 1 binds a different size: every rank raises, none hangs
        group.all_reduce_init(np.ones(10 + (rank == 1)), "ring")
    except Exception as exc:  # noqa: BLE001 - CollectiveError or ValueError, named
        errors.append(f"{type(exc).__name__}: {exc}")
    handle = group.all_reduce_init(np.ones(4), "ring")
    handle.free()
    handle.free()  # a second free does nothing
    try:
        handle()
    except ValueError as exc:
        errors.append(str(exc))
    for bad in ({"algorithm": "bogus"}, {"op": "prod"},  # on rank 0 only: nobody hangs
                {"algorithm": ["ring"]}, {"op": ["sum"]}):  # unhashable: the same
        kwargs = bad if rank == 0 else {}
        try:
            group.all_reduce(np.ones(3), **kwargs)
        except ValueError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    group.free()
    return {"mismatches": mismatches, "calls": calls, "errors": errors}


@pytest.mark.parametrize("nprocs", [2, 3])
def test_persistent_all_reduce_is_bitwise_the_one_shot_path(nprocs):
    job = launch(nprocs, [__file__], timeout=TIMEOUT, capture=True)
    assert job.returncode == 0, job.stdout + job.stderr
    doc = json.loads(job.stdout)
    assert doc["calls"] == 4 * 4 * 2 * 3 * 3 and doc["mismatches"] == []
    assert "no persistent step table" in doc["errors"][0]
    assert "rank 1" in doc["errors"][1] and "11 elements" in doc["errors"][1]
    assert "the handle was freed" in doc["errors"][2]
    assert "rank 0" in doc["errors"][3] and "unknown algorithm" in doc["errors"][3]
    assert "rank 0" in doc["errors"][4] and "unknown op" in doc["errors"][4]
    assert "rank 0" in doc["errors"][5] and "unknown algorithm ['ring']" in doc["errors"][5]
    assert "rank 0" in doc["errors"][6] and "unknown op ['sum']" in doc["errors"][6]


if __name__ == "__main__":
    from mpi4py import MPI

    result = worker()
    gathered = MPI.COMM_WORLD.gather(result, root=0)
    if MPI.COMM_WORLD.Get_rank() == 0:
        # every rank saw the same refusals (rank 1's view of rank 0's bad call included)
        assert all(len(g["errors"]) == len(gathered[0]["errors"]) for g in gathered)
        print(json.dumps(gathered[0]))
    sys.exit(0)
