"""All-reduce benchmarks, each measured as a ratio against a baseline in the same run.

Run: ``python -m pytest benchmarks/bench_collectives.py --benchmark-only``
(figures land in the table's extra_info columns; add ``--benchmark-json FILE`` to keep them).

* ``test_large_vs_memory_bound``: 8 ranks x 1, 16 and 64 MiB float32, ring and tree.
  The bound is the **all-core memory bound** of :mod:`ringpipe.measure.bench`: the
  all-reduce must move 2·N·S bytes (read every input once, write every output once),
  at the bandwidth of a parallel ``a += b`` over every Numba thread on arrays of N·S
  bytes, timed in alternation with the all-reduce. ``ratio_to_allcore_bound`` is the
  figure of merit (target <= 1.2, stretch 1.1; ``fraction_of_bound`` = its inverse);
  ``ratio_to_np_add`` is the same time against single-threaded ``np.add``'s bandwidth,
  the baseline this benchmark used before (reported only: one thread does not saturate
  memory, so it is no bound).
* ``test_small_numba_vs_numpy``: 8 ranks x 4 KiB; numba executor vs numpy executor,
  both through ``ringpipe.all_reduce`` (argument checks included), and the persistent
  handle (``ringpipe.all_reduce_init``). Target speed-up >= 10 one-shot, for ring and tree.
* ``test_out_of_place_vs_in_place``: 8 ranks x 4, 64 and 256 KiB, ``out=`` against in
  place, timed in alternation. Target ratio <= 2 (the out-of-place copy is fused into
  the same pass; before the fix a 64 KiB row took 6-15 ms on a busy machine against
  20 µs in place: it counted its inputs toward the thread-pool threshold and skipped
  the one-shot path).
* ``test_sweep``: 4 KiB .. 64 MiB, algbw and busbw with nccl-tests' definitions.
* ``test_all_to_all``: the pairwise all-to-all, 8 ranks × 64 KiB .. 4 MiB float32, as an
  nccl-tests row (busbw = algbw·(N-1)/N, #wrong against a NumPy block transpose) and as
  a ratio against that transpose timed in alternation (the same bytes, NumPy alone).
"""

import numpy as np
import pytest

import ringpipe
from ringpipe.measure.bandwidth import busbw_factor
from ringpipe.measure.bench import (
    all_reduce_vs_bound,
    out_of_place_vs_in_place,
    small_message_speedups,
    timing_buffers,
)

N = 8
MIB = 1 << 20


@pytest.mark.parametrize("algorithm", ["ring", "tree"])
@pytest.mark.parametrize("size", [1 * MIB, 16 * MIB, 64 * MIB], ids=["1M", "16M", "64M"])
def test_large_vs_memory_bound(benchmark, algorithm, size):
    result = benchmark.pedantic(all_reduce_vs_bound, args=(algorithm, N, size, 9), rounds=1,
                                iterations=1)
    t = result.seconds
    benchmark.extra_info.update(
        ratio_to_allcore_bound=result.ratio_allcore, fraction_of_bound=1 / result.ratio_allcore,
        ratio_to_np_add=result.ratio_np_add, allcore_gbps=result.allcore_gbps,
        np_add_gbps=result.np_add_gbps, allreduce_ms=t * 1e3,
        allcore_bound_ms=result.allcore_bound_s * 1e3, algbw_gbps=size / t / 1e9,
        busbw_gbps=size / t / 1e9 * busbw_factor("all_reduce", N))


@pytest.mark.parametrize("algorithm", ["ring", "tree"])
def test_small_numba_vs_numpy(benchmark, algorithm):
    numpy_t, one_shot, persistent = benchmark.pedantic(
        small_message_speedups, args=(algorithm, N, 4096, 7, 300), rounds=1, iterations=1)
    benchmark.extra_info.update(speedup_vs_numpy=one_shot, persistent_speedup_vs_numpy=persistent,
                                numba_us=numpy_t / one_shot * 1e6,
                                persistent_us=numpy_t / persistent * 1e6,
                                numpy_us=numpy_t * 1e6, target_speedup=10)


@pytest.mark.parametrize("algorithm", ["ring", "tree"])
@pytest.mark.parametrize("size", [4 << 10, 64 << 10, 256 << 10], ids=["4K", "64K", "256K"])
def test_out_of_place_vs_in_place(benchmark, algorithm, size):
    in_place, out_of_place = benchmark.pedantic(
        out_of_place_vs_in_place, args=(algorithm, N, size, 7, 50), rounds=1, iterations=1)
    benchmark.extra_info.update(out_of_place_over_in_place=out_of_place / in_place,
                                in_place_us=in_place * 1e6, out_of_place_us=out_of_place * 1e6,
                                target_ratio=2.0)


@pytest.mark.parametrize("algorithm", ["ring", "tree"])
@pytest.mark.parametrize("size", [4 << 10, 64 << 10, 1 * MIB, 16 * MIB, 64 * MIB],
                         ids=["4K", "64K", "1M", "16M", "64M"])
def test_sweep(benchmark, algorithm, size):
    bufs = timing_buffers(N, size)
    ringpipe.all_reduce(bufs, algorithm, "numba")
    rounds = max(3, min(200, (64 * MIB) // size))
    benchmark.pedantic(ringpipe.all_reduce, args=(bufs, algorithm, "numba"), rounds=rounds,
                       warmup_rounds=1)
    t = benchmark.stats.stats.min
    algbw = size / t / 1e9
    assert np.all(bufs[0] == 0)
    benchmark.extra_info.update(size_bytes=size, algbw_gbps=algbw,
                                busbw_gbps=algbw * busbw_factor("all_reduce", N))


@pytest.mark.parametrize("size", [64 << 10, 1 * MIB, 4 * MIB], ids=["64K", "1M", "4M"])
def test_all_to_all(benchmark, size):
    from ringpipe.measure.all_to_all import all_to_all_vs_transpose

    result = benchmark.pedantic(all_to_all_vs_transpose, args=(N, size, "numba", 5), rounds=1,
                                iterations=1)
    assert result.wrong == 0
    benchmark.extra_info.update(size_bytes=size, algbw_gbps=size / result.seconds / 1e9,
                                busbw_gbps=result.busbw_gbps, ratio_to_transpose=result.ratio,
                                all_to_all_ms=result.seconds * 1e3,
                                transpose_ms=result.transpose_seconds * 1e3)
