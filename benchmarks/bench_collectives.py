"""All-reduce benchmarks, each measured as a ratio against a baseline in the same run.

Run: ``python -m pytest benchmarks/bench_collectives.py --benchmark-only``
(figures land in the table's extra_info columns; add ``--benchmark-json FILE`` to keep them).

* ``test_large_vs_memory_bound``: 8 ranks x 16 MiB float32. The lower bound moves
  2·N·S bytes (read every input once, write every output once) at the bandwidth that
  ``np.add(a, b, out=a)`` reaches here (3·S bytes per call). Target ratio <= 1.3.
* ``test_small_numba_vs_numpy``: 8 ranks x 4 KiB; numba executor vs numpy executor,
  both through ``ringpipe.all_reduce`` (argument checks included). Target speedup >= 10.
* ``test_small_persistent_numba_vs_numpy``: the same, with the numba all-reduce checked
  and bound once (``ringpipe.all_reduce_init``), as a training loop would use it.
* ``test_sweep``: 4 KiB .. 64 MiB, algbw and busbw with nccl-tests' definitions.
"""

import numpy as np
import pytest
from timing import best_time

import ringpipe
from ringpipe.bandwidth import busbw_factor, exact_inputs

N = 8
MIB = 1 << 20



def add_bandwidth(nbytes):
    """Bytes/s of np.add(a, b, out=a) on nbytes-sized float32 arrays (3 passes)."""
    a = np.ones(nbytes // 4, np.float32)
    b = np.ones(nbytes // 4, np.float32)
    return 3 * nbytes / best_time(lambda: np.add(a, b, out=a), 15)


@pytest.mark.parametrize("algorithm", ["ring", "tree"])
def test_large_vs_memory_bound(benchmark, algorithm):
    size = 16 * MIB
    bufs = exact_inputs(N, size // 4, np.float32)
    ringpipe.all_reduce(bufs, algorithm, "numba")  # compile / load cache, warm pages
    before = add_bandwidth(size)
    benchmark.pedantic(ringpipe.all_reduce, args=(bufs, algorithm, "numba"), rounds=15,
                       warmup_rounds=1)
    bandwidth = max(before, add_bandwidth(size))  # the better baseline: a stricter ratio
    bound = 2 * N * size / bandwidth
    t = benchmark.stats.stats.min
    benchmark.extra_info.update(
        ratio_to_memory_bound=t / bound, np_add_gbps=bandwidth / 1e9,
        allreduce_ms=t * 1e3, bound_ms=bound * 1e3, algbw_gbps=size / t / 1e9,
        busbw_gbps=size / t / 1e9 * busbw_factor("all_reduce", N))


@pytest.mark.parametrize("algorithm", ["ring", "tree"])
def test_small_numba_vs_numpy(benchmark, algorithm):
    bufs = exact_inputs(N, 4096 // 4, np.float32)
    ringpipe.all_reduce(bufs, algorithm, "numba")
    numpy_time = best_time(lambda: ringpipe.all_reduce(bufs, algorithm, "numpy"), 300)
    benchmark.pedantic(ringpipe.all_reduce, args=(bufs, algorithm, "numba"), rounds=2000,
                       warmup_rounds=10)
    t = benchmark.stats.stats.min
    benchmark.extra_info.update(speedup_vs_numpy=numpy_time / t, numba_us=t * 1e6,
                                numpy_us=numpy_time * 1e6)


@pytest.mark.parametrize("algorithm", ["ring", "tree"])
def test_small_persistent_numba_vs_numpy(benchmark, algorithm):
    """The same 8 x 4 KiB all-reduce, checked and bound once (``all_reduce_init``)."""
    bufs = exact_inputs(N, 4096 // 4, np.float32)
    handle = ringpipe.all_reduce_init(bufs, algorithm, "numba")
    handle()
    numpy_time = best_time(lambda: ringpipe.all_reduce(bufs, algorithm, "numpy"), 300)
    benchmark.pedantic(handle, rounds=2000, warmup_rounds=10)
    t = benchmark.stats.stats.min
    benchmark.extra_info.update(speedup_vs_numpy=numpy_time / t, numba_us=t * 1e6,
                                numpy_us=numpy_time * 1e6)


@pytest.mark.parametrize("algorithm", ["ring", "tree"])
@pytest.mark.parametrize("size", [4 << 10, 64 << 10, 1 * MIB, 16 * MIB, 64 * MIB],
                         ids=["4K", "64K", "1M", "16M", "64M"])
def test_sweep(benchmark, algorithm, size):
    bufs = exact_inputs(N, size // 4, np.float32)
    ringpipe.all_reduce(bufs, algorithm, "numba")
    rounds = max(3, min(200, (64 * MIB) // size))
    benchmark.pedantic(ringpipe.all_reduce, args=(bufs, algorithm, "numba"), rounds=rounds,
                       warmup_rounds=1)
    t = benchmark.stats.stats.min
    algbw = size / t / 1e9
    benchmark.extra_info.update(size_bytes=size, algbw_gbps=algbw,
                                busbw_gbps=algbw * busbw_factor("all_reduce", N))
