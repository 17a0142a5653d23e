"""MPI all-reduce benchmarks: ringpipe's ring over MPI vs MPICH's MPI_Allreduce.

Run: ``python -m pytest benchmarks/bench_mpi.py --benchmark-only -s`` (``-s`` shows the
nccl-tests tables; add ``--benchmark-json FILE`` to keep the extra_info figures).

Every benchmark starts its own job, ``mpiexec -n N python -m ringpipe.mpi allreduce
--json`` (:mod:`ringpipe.measure.mpi_allreduce`), on 2 ranks and on 4 ranks (oversubscribed on a
2-core machine). Rank 0 times the iterations between MPI barriers -- the slowest rank's
time, best of several repetitions, the algorithms taking turns in every repetition --
and prints JSON; those figures go to ``extra_info``. pytest-benchmark's own timing is
the whole job (start-up included) and is not the figure of merit.

* ``test_ring_vs_mpi_allreduce``: 16 MiB float32; ``ratio`` = ring time / MPI_Allreduce
  time in the same job; target <= 1.1 (``meets_target``).
* ``test_sweep``: 4 KiB .. 64 MiB (x4) for ring, tree and mpi, nccl-tests columns.
"""

import json

import pytest

from ringpipe.measure.bandwidth import BandwidthRow, format_table
from ringpipe.mpi.launch import launch

MIB = 1 << 20
TARGET_RATIO = 1.1


def perf_job(nprocs, *args):
    job = launch(nprocs, ["-m", "ringpipe.mpi", "allreduce", "--json", *args], timeout=600,
                 capture=True)
    assert job.returncode == 0, job.stderr
    return json.loads(job.stdout)


@pytest.mark.parametrize("nprocs", [2, 4])
def test_ring_vs_mpi_allreduce(benchmark, nprocs):
    args = ["--min-bytes", str(16 * MIB), "--max-bytes", str(16 * MIB),
            "--algorithms", "ring,mpi", "--iters", "10", "--reps", "5"]
    doc = benchmark.pedantic(perf_job, args=(nprocs, *args), rounds=1, iterations=1)
    ring, mpi = (next(r for r in doc["rows"] if r["algorithm"] == a) for a in ("ring", "mpi"))
    assert ring["wrong"] == mpi["wrong"] == 0
    ratio = ring["time_us"] / mpi["time_us"]
    benchmark.extra_info.update(
        nranks=nprocs, size_bytes=ring["size_bytes"], segment_bytes=doc["segment_bytes"],
        ring_ms=ring["time_us"] / 1e3, mpi_allreduce_ms=mpi["time_us"] / 1e3,
        ratio=ratio, target_ratio=TARGET_RATIO, meets_target=ratio <= TARGET_RATIO,
        ring_algbw_gbps=ring["algbw_gbps"], ring_busbw_gbps=ring["busbw_gbps"],
        mpi_algbw_gbps=mpi["algbw_gbps"], mpi_busbw_gbps=mpi["busbw_gbps"])
    print(f"\n{nprocs} ranks, 16 MiB float32: ring {ring['time_us'] / 1e3:.2f} ms, "
          f"MPI_Allreduce {mpi['time_us'] / 1e3:.2f} ms, ratio {ratio:.3f}")


@pytest.mark.slow  # 20-60 s each on 2 cores
@pytest.mark.parametrize("nprocs", [2, 4])
def test_sweep(benchmark, nprocs):
    args = ["--min-bytes", str(4 << 10), "--max-bytes", str(64 * MIB), "--factor", "4",
            "--algorithms", "ring,tree,mpi", "--iters", "10", "--reps", "3"]
    doc = benchmark.pedantic(perf_job, args=(nprocs, *args), rounds=1, iterations=1)
    rows = [BandwidthRow(**r) for r in doc["rows"]]
    assert rows and all(r.wrong == 0 for r in rows)
    benchmark.extra_info.update(nranks=nprocs, segment_bytes=doc["segment_bytes"],
                                rows=doc["rows"])
    for alg in ("ring", "tree", "mpi"):
        print(f"\n# all_reduce over MPI, {nprocs} ranks, algorithm {alg}")
        print(format_table([r for r in rows if r.algorithm == alg]))
