"""Small one-shot MPI all-reduces run through staged persistent handles: same bits.

``ProcessGroup.all_reduce`` copies a buffer of at most ``SMALL_MESSAGE_BYTES`` into a
cached staging buffer bound to a persistent handle. These tests check, on both sides of
that threshold, that the results are bitwise those of the in-process NumPy executor,
that a handle reads fresh contents at every call, that the cache stays bounded when
more sizes than ``STAGED_HANDLES`` take turns, and that ``free`` releases it.

Run as a script under mpiexec by the test below; rank 0 prints one JSON line.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import ringpipe
from ringpipe.mpi.launch import launch

pytestmark = pytest.mark.mpi

TIMEOUT = 90


def _inputs(n: int, count: int, dtype: type, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "i":
        return [rng.integers(-1000, 1000, count).astype(dtype) for _ in range(n)]
    return [(rng.standard_normal(count) * 100).astype(dtype) for _ in range(n)]


def worker() -> dict:
    from mpi4py import MPI

    from ringpipe.mpi import ProcessGroup
    from ringpipe.mpi.group import SMALL_MESSAGE_BYTES, STAGED_HANDLES

    world = MPI.COMM_WORLD
    rank, n = world.Get_rank(), world.Get_size()
    mismatches, staged_sizes, seed = [], [], 0
    for segment_bytes in (256, 1 << 20):  # many ticks with several receptions; one tick
        group = ProcessGroup(world, segment_bytes=segment_bytes, name="world")
        for dtype in (np.float16, np.float32, np.float64, np.int32):
            edge = SMALL_MESSAGE_BYTES // np.dtype(dtype).itemsize
            for count in (1, 7, edge - 1, edge, edge + 1):
                for algorithm, op in (("ring", "sum"), ("tree", "sum"), ("ring", "max")):
                    for again in range(2):  # a second call reuses the handle, fresh data
                        seed += 1
                        ins = _inputs(n, count, dtype, seed)
                        want = ringpipe.all_reduce([b.copy() for b in ins], algorithm,
                                                   "numpy", op)[rank]
                        got = group.all_reduce(ins[rank].copy(), algorithm, op,
                                               check=again == 0)
                        out = group.all_reduce(ins[rank], algorithm, op,
                                               out=np.empty_like(ins[rank]))
                        if got.tobytes() != want.tobytes() or out.tobytes() != want.tobytes():
                            mismatches.append([segment_bytes, np.dtype(dtype).name, count,
                                               algorithm, op, again])
                staged_sizes.append(len(group._staged))
        group.free()
        staged_sizes.append(len(group._staged))
    return {"mismatches": mismatches, "most_staged": max(staged_sizes),
            "after_free": staged_sizes[-1], "limit": STAGED_HANDLES}


@pytest.mark.parametrize("nprocs", [2, 3])
def test_small_one_shot_all_reduce_is_bitwise_the_numpy_executor(nprocs):
    job = launch(nprocs, [__file__], timeout=TIMEOUT, capture=True)
    assert job.returncode == 0, job.stdout + job.stderr
    doc = json.loads(job.stdout)
    assert doc["mismatches"] == []
    # 4 small counts x 3 (algorithm, op) pairs per dtype took turns: the cache is full
    # but never over its limit, and free empties it
    assert doc["most_staged"] == doc["limit"]
    assert doc["after_free"] == 0


if __name__ == "__main__":
    result = worker()
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_rank() == 0:
        print(json.dumps(result))
    sys.exit(0)
