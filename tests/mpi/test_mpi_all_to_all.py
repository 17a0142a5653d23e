"""``ProcessGroup.all_to_all``: bitwise equal to ``ringpipe.all_to_all`` in-process and to
the block transpose, for every dtype, on 2, 3 and 4 ranks; ``"mpi"`` (MPI_Alltoall)
agrees too; a size the ranks do not divide is refused on every rank.

The test functions start ``mpiexec`` on this very file; run as a script, each rank
executes :func:`worker` and rank 0 prints one JSON line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import ringpipe
from ringpipe.mpi.launch import launch

pytestmark = pytest.mark.mpi

DTYPES = (np.float16, np.float32, np.float64, np.int32, np.int64)


def _inputs(n, count, dtype, seed):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(count) * 100).astype(dtype) for _ in range(n)]


def worker() -> None:
    from mpi4py import MPI

    from ringpipe.mpi import ProcessGroup

    world = MPI.COMM_WORLD
    n, rank = world.Get_size(), world.Get_rank()
    group = ProcessGroup(world, name="world", segment_bytes=64)
    bad, cases = [], 0
    for i, dtype in enumerate(DTYPES):
        for blocks in (0, 1, 7, 1000):
            xs = _inputs(n, n * blocks, dtype, seed=10 * i + blocks)
            want = ringpipe.all_to_all([x.copy() for x in xs], backend="numpy")[rank]
            transpose = np.stack([x.reshape(n, -1) for x in xs])[:, rank, :].reshape(-1)
            got = group.all_to_all(xs[rank].copy())
            out = group.all_to_all(xs[rank], out=np.empty_like(xs[rank]))
            lib = group.all_to_all(xs[rank], "mpi", out=np.empty_like(xs[rank]))
            cases += 1
            if not (got.tobytes() == want.tobytes() == transpose.tobytes() == out.tobytes()
                    == lib.tobytes()):
                bad.append(f"rank {rank}: {np.dtype(dtype)} blocks={blocks}")
    try:
        group.all_to_all(np.zeros(n + 1))
        refused = "no error"
    except ValueError as exc:
        refused = str(exc)
    doc = {"cases": cases, "failures": sum(world.allgather(bad), []),
           "refused": world.allgather(refused)}
    group.free()
    if rank == 0:
        print(json.dumps(doc))


@pytest.mark.parametrize("nprocs", [2, 3, 4])
def test_all_to_all_bitwise_equal_to_inprocess(nprocs):
    job = launch(nprocs, [__file__], timeout=90, capture=True)
    assert job.returncode == 0, job.stderr
    doc = json.loads(job.stdout.strip().splitlines()[-1])
    assert doc["failures"] == [] and doc["cases"] == 20
    assert all(f"not a multiple of the {nprocs} ranks" in text for text in doc["refused"])


if __name__ == "__main__":
    worker()
