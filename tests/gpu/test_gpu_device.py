"""backend="cupy" and algorithm="nccl" on real GPUs (marked ``gpu``; skipped without one).

Run on a GPU machine: ``python -m pytest tests/gpu/test_gpu_device.py -m gpu``. Each test
compares with the NumPy reference executor on the same inputs copied to the host.
"""

import os

import numpy as np
import pytest

import ringpipe
from ringpipe.kernels.cuda.tuning import CudaTuning


def _gpus():
    """(cupy, device count), or a skip reason."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return None, "NUMBA_ENABLE_CUDASIM is set: backend 'cupy' runs the simulator here"
    try:
        import cupy
    except ImportError:
        return None, "CuPy is not installed (pip install 'ringpipe[gpu]')"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - any CUDA failure means "no usable GPU"
        return None, f"no usable CUDA device: {exc}"
    return (cupy, count), "" if count else "no CUDA device"


_FOUND, _REASON = _gpus()
cp = _FOUND[0] if _FOUND else None
NGPUS = _FOUND[1] if _FOUND else 0
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(NGPUS == 0, reason=_REASON or "no GPU")]

DTYPES = [np.float16, np.float32, np.float64, np.int32, np.int64]
SMALL = CudaTuning(threads_per_block=32, elems_per_thread=3, tile_elems=100, max_blocks=7)


def host(arrays):
    return [cp.asnumpy(a) for a in arrays]


def assert_bitwise(got, want, nan_payloads_free=False):
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        if nan_payloads_free:  # GPU float sums return a canonical NaN
            assert np.array_equal(np.isnan(g), np.isnan(w))
            g, w = g[~np.isnan(w)], w[~np.isnan(w)]
        assert g.tobytes() == w.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 3, 8])
@pytest.mark.parametrize("tuning", [None, SMALL], ids=["default", "small"])
def test_all_reduce_bitwise_with_the_reference(dtype, n, tuning):
    rng = np.random.default_rng(n)
    kw = {} if tuning is None else {"tuning": tuning}
    for size in (0, 1, n - 1, 1009, 100_003):
        for algorithm in ("ring", "tree"):
            for op in ("sum", "max", "min"):
                if np.dtype(dtype).kind == "f":
                    xs = [rng.standard_normal(size).astype(dtype) for _ in range(n)]
                else:
                    xs = [rng.integers(-1000, 1000, size).astype(dtype) for _ in range(n)]
                want = ringpipe.all_reduce([x.copy() for x in xs], algorithm, "numpy", op)
                gpu = [cp.asarray(x) for x in xs]
                ringpipe.all_reduce(gpu, algorithm, "cupy", op, **kw)
                assert_bitwise(host(gpu), want)
                outs = [cp.empty_like(g) for g in gpu]
                src = [cp.asarray(x) for x in xs]
                ringpipe.all_reduce(src, algorithm, "cupy", op, out=outs, **kw)
                assert_bitwise(host(outs), want)
                assert_bitwise(host(src), xs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_other_collectives(dtype):
    n, size = 5, 4099
    rng = np.random.default_rng(0)
    xs = [rng.integers(-9, 10, size).astype(dtype) for _ in range(n)]
    for name, kw in [("reduce_scatter", {}), ("all_gather", {}), ("broadcast", {"root": 3}),
                     ("reduce", {"root": 2}), ("reduce", {"root": 4, "algorithm": "tree"})]:
        fn = getattr(ringpipe, name)
        want = fn([x.copy() for x in xs], backend="numpy", **kw)
        got = fn([cp.asarray(x) for x in xs], backend="cupy", tuning=SMALL, **kw)
        assert_bitwise(host(got), want)


def test_special_values():
    n = 4
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, 65504], np.float32)
    xs = [np.random.default_rng(r).permutation(np.tile(specials, 50)) for r in range(n)]
    for dtype in (np.float16, np.float32, np.float64):
        for op in ("sum", "max", "min"):
            ys = [x.astype(dtype) for x in xs]
            with np.errstate(all="ignore"):
                want = ringpipe.all_reduce([y.copy() for y in ys], "ring", "numpy", op)
            gpu = [cp.asarray(y) for y in ys]
            ringpipe.all_reduce(gpu, "ring", "cupy", op)
            free = op == "sum" and dtype != np.float16
            assert_bitwise(host(gpu), want, nan_payloads_free=free)


def test_numpy_arrays_are_refused_on_a_real_gpu():
    bufs = [np.ones(4, np.float32) for _ in range(2)]
    with pytest.raises(TypeError, match=r"rank 0: buffers\[0\] is a ndarray, expected cupy"):
        ringpipe.all_reduce(bufs, backend="cupy")


@pytest.mark.skipif(NGPUS < 2, reason=_REASON or "algorithm 'nccl' needs at least 2 GPUs")
@pytest.mark.parametrize("dtype", DTYPES)
def test_nccl_all_reduce_one_rank_per_device(dtype):
    n = min(NGPUS, 4)
    rng = np.random.default_rng(0)
    xs = [rng.integers(-9, 10, 1 << 16).astype(dtype) for _ in range(n)]
    want = ringpipe.all_reduce([x.copy() for x in xs], "ring", "numpy")
    bufs = []
    for r, x in enumerate(xs):
        with cp.cuda.Device(r):
            bufs.append(cp.asarray(x))
    ringpipe.all_reduce(bufs, "nccl", "cupy")
    for r in range(n):
        with cp.cuda.Device(r):
            cp.cuda.get_current_stream().synchronize()
    assert_bitwise(host(bufs), want)  # small integers: exact in any order


@pytest.mark.skipif(NGPUS < 2, reason=_REASON or "needs at least 2 GPUs")
@pytest.mark.parametrize("algorithm", ["ring", "tree"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_peer_copy_all_reduce_one_rank_per_device(algorithm, dtype):
    """Ranks on several GPUs run by peer copies (kernels/cuda/peer.py), bitwise numpy."""
    n = min(NGPUS, 4)
    rng = np.random.default_rng(1)
    for size in (1, 2 * n + 1, 1 << 16):
        xs = [rng.standard_normal(size).astype(dtype) if np.dtype(dtype).kind == "f"
              else rng.integers(-9, 10, size).astype(dtype) for _ in range(n)]
        for op in ("sum", "max", "min"):
            want = ringpipe.all_reduce([x.copy() for x in xs], algorithm, "numpy", op)
            bufs = []
            for r, x in enumerate(xs):
                with cp.cuda.Device(r):
                    bufs.append(cp.asarray(x))
            ringpipe.all_reduce(bufs, algorithm, "cupy", op)
            assert [int(b.device.id) for b in bufs] == list(range(n))
            assert_bitwise(host(bufs), want, nan_payloads_free=True)


@pytest.mark.skipif(NGPUS < 2, reason=_REASON or "needs at least 2 GPUs")
def test_fused_kernel_runs_on_the_ranks_device_not_the_current_one():
    xs = [np.arange(1000, dtype=np.float32) * (r + 1) for r in range(3)]
    want = ringpipe.all_reduce([x.copy() for x in xs], "tree", "numpy")
    with cp.cuda.Device(1):
        bufs = [cp.asarray(x) for x in xs]
    with cp.cuda.Device(0):
        ringpipe.all_reduce(bufs, "tree", "cupy")
    assert all(int(b.device.id) == 1 for b in bufs)
    assert_bitwise(host(bufs), want)


# -- the plan runtime on the GPU (issue 7, item 4) ------------------------------------

@pytest.mark.parametrize("dtype,vocab,schedule,extra", [
    ("float64", 13, "1f1b", {}),
    ("float32", 0, "zb-v", {}),
    ("float32", 11, "zb-h1", {"norm": "layernorm"}),
    ("float64", 0, "interleaved-1f1b", {"block": "mlp"}),
])
def test_plan_on_the_gpu_matches_the_numpy_reference(monkeypatch, dtype, vocab, schedule,
                                                     extra):
    import ringpipe.runtime.training as training
    from ringpipe.mesh import Mesh
    from ringpipe.model import ModelConfig
    from ringpipe.plan.training import Plan
    from ringpipe.verify.training import verify_plan

    seen = []
    real_forward = training.stage_forward

    def spy(spec, shards, xs, *args, **kwargs):  # everything the stage gets is on the GPU
        seen.append(all(isinstance(v, cp.ndarray) for s in shards for v in s.values())
                    and all(isinstance(x, cp.ndarray) for x in xs))
        return real_forward(spec, shards, xs, *args, **kwargs)

    monkeypatch.setattr(training, "stage_forward", spy)
    cfg = ModelConfig(layers=4, hidden=32, heads=4, seq=8, vocab=vocab, dtype=dtype, **extra)
    plan = Plan(cfg, Mesh(dp=2, pp=2, tp=2), schedule=schedule, microbatches=4,
                allreduce="tree" if dtype == "float32" else "ring")
    report = verify_plan(plan, backend="cupy", seed=3)
    assert report.ok, report.errors
    assert seen and all(seen)
    assert type(report.result.outputs) is np.ndarray
    assert all(type(g) is np.ndarray for g in report.result.grads.values())
    assert {g.dtype for g in report.result.grads.values()} == {np.dtype(dtype)}
    if vocab:  # the embedding gradient avoids atomics: two runs agree bit for bit
        again = plan.run(*_params_and_batch(plan, 3), backend="cupy")
        first = plan.run(*_params_and_batch(plan, 3), backend="cupy")
        assert again.grads["embed.weight"].tobytes() == first.grads["embed.weight"].tobytes()


def _params_and_batch(plan, seed):
    from ringpipe.model import init_params
    from ringpipe.verify.training import random_batch

    return init_params(plan.config, seed), random_batch(plan.config, 16, seed + 1)
