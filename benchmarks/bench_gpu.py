"""GPU all-reduce: 8 simulated ranks x 256 MiB float32 on one GPU vs a device copy.

Run (on a machine with a CUDA GPU and ``pip install ".[gpu,test]"``)::

    python -m pytest benchmarks/bench_gpu.py --benchmark-only -m gpu

Skipped, with the reason, without CuPy or a GPU (or under ``NUMBA_ENABLE_CUDASIM``).

* ``test_allreduce_vs_device_copy``: ``ringpipe.all_reduce(..., backend="cupy")`` in
  place on 8 CuPy arrays of 256 MiB on one GPU. The kernel's floor is 2·N·S bytes of
  HBM traffic (read every input once, write every output once), so its bandwidth is
  2·N·S / t, compared with a device-to-device copy of S bytes (``dst[...] = src``,
  2·S bytes) timed in the same run. Target: ratio >= 0.8. algbw and busbw use
  nccl-tests' definitions (S / t, and algbw · 2(N-1)/N).
* ``test_plan_on_gpu_vs_cpu``: a TP=2 × PP=4 plan run on the GPU (``backend="cupy"``),
  validated against the NumPy reference, then timed against the same plan on the CPU.
* Results are validated first (llm.c style): inputs are small integers, so every
  summation order gives exactly N-rank sums, and the kernel must match them.

Timings use CUDA events around each call on the current stream (launch overhead
included), best of ``ROUNDS``.
"""

import os

import pytest

import ringpipe
from ringpipe.measure.bandwidth import busbw_factor

N = 8
SIZE = 256 << 20  # bytes per rank
ROUNDS = 20


def _cupy_or_reason():
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return None, "NUMBA_ENABLE_CUDASIM is set: no real GPU kernels"
    try:
        import cupy
    except ImportError:
        return None, "CuPy is not installed (pip install 'ringpipe[gpu]')"
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            return None, "no CUDA device"
    except Exception as exc:  # noqa: BLE001 - any CUDA failure means "no usable GPU"
        return None, f"no usable CUDA device: {exc}"
    return cupy, ""


cp, _REASON = _cupy_or_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(cp is None, reason=_REASON or "no GPU")]


def gpu_best_time(fn, rounds):
    """Best wall time of ``fn`` on the GPU (CUDA events on the current stream), seconds."""
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    best = float("inf")
    for _ in range(rounds):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        best = min(best, cp.cuda.get_elapsed_time(start, stop) / 1e3)
    return best


def copy_bandwidth(count):
    """Bytes/s of a device-to-device copy of ``count`` float32 (2·S bytes moved)."""
    src = cp.ones(count, cp.float32)
    dst = cp.empty_like(src)
    t = gpu_best_time(lambda: dst.__setitem__(Ellipsis, src), ROUNDS)
    return 2 * count * 4 / t


def exact_ranks(count):
    """Rank r holds (i + r) % 4 - 1: small integers, exact sums in any order."""
    base = cp.arange(count, dtype=cp.int64)
    return [((base + r) % 4 - 1).astype(cp.float32) for r in range(N)]


@pytest.mark.parametrize("algorithm", ["ring", "tree"])
def test_allreduce_vs_device_copy(benchmark, algorithm):
    count = SIZE // 4
    bufs = exact_ranks(count)
    want = sum(bufs[1:], bufs[0].copy())  # exact: small integers
    ringpipe.all_reduce(bufs, algorithm, "cupy")  # compile (first call), validate
    for r, b in enumerate(bufs):
        assert int(cp.count_nonzero(b != want)) == 0, f"rank {r}: wrong all-reduce result"
    del want
    for b in bufs:  # zeros keep in-place repeats finite
        b.fill(0)
    before = copy_bandwidth(count)
    t = gpu_best_time(lambda: ringpipe.all_reduce(bufs, algorithm, "cupy"), ROUNDS)
    benchmark.pedantic(lambda: (ringpipe.all_reduce(bufs, algorithm, "cupy"),
                                cp.cuda.get_current_stream().synchronize()),
                       rounds=5, warmup_rounds=1)
    copy_bw = max(before, copy_bandwidth(count))  # the better baseline: a stricter ratio
    kernel_bw = 2 * N * SIZE / t
    benchmark.extra_info.update(
        ratio_to_copy=kernel_bw / copy_bw, target_ratio=0.8, kernel_gbps=kernel_bw / 1e9,
        copy_gbps=copy_bw / 1e9, allreduce_ms=t * 1e3, algbw_gbps=SIZE / t / 1e9,
        busbw_gbps=SIZE / t / 1e9 * busbw_factor("all_reduce", N),
        device=cp.cuda.runtime.getDeviceProperties(0)["name"].decode())


def test_plan_on_gpu_vs_cpu(benchmark):
    """``plan.run(backend="cupy")`` vs ``backend="numba"`` for bench_plan's model and
    plan (TP=2 × PP=4, 1F1B, 8 micro-batches, float32): ``speedup_vs_cpu`` is the CPU
    time over the GPU time, each the best of its rounds in this run. Both include the
    host work of a run (sharding, uploads, copying results back)."""
    from ringpipe.measure.timer import best_of as best_time
    from ringpipe.mesh import Mesh
    from ringpipe.model import ModelConfig, init_params
    from ringpipe.plan.training import Plan
    from ringpipe.verify.training import compare_to_reference, random_batch

    cfg = ModelConfig(layers=8, hidden=512, heads=8, seq=128, dtype="float32")
    params, batch = init_params(cfg, 0), random_batch(cfg, 16, 1)
    plan = Plan(cfg, Mesh(pp=4, tp=2), schedule="1f1b", microbatches=8)
    report = compare_to_reference(plan, plan.run(params, batch, backend="cupy"), params, batch)
    assert report.ok, report.errors  # validate before timing (also compiles the kernel)

    def gpu_run():
        plan.run(params, batch, backend="cupy")
        cp.cuda.get_current_stream().synchronize()

    cpu = best_time(lambda: plan.run(params, batch, backend="numba"), 2)
    benchmark.pedantic(gpu_run, rounds=5, warmup_rounds=1)
    gpu = benchmark.stats.stats.min
    benchmark.extra_info.update(speedup_vs_cpu=cpu / gpu, gpu_s=gpu, cpu_s=cpu,
                                max_rel_error=report.max_rel_error)
