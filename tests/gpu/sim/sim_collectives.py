"""``backend="cupy"`` through the public API, under the CUDA simulator (NumPy arrays).

Every collective, in place and with ``out=``, against ``backend="numpy"``; shaped
buffers; and bad input, rejected with a TypeError/ValueError naming rank and argument
before any buffer is touched.
"""

import numpy as np
import pytest

import ringpipe
from ringpipe import KernelTuning
from ringpipe.kernels.cuda.executor import MAX_RANKS
from ringpipe.kernels.cuda.tuning import CudaTuning

DTYPES = [np.float16, np.float32, np.float64, np.int32, np.int64]
SMALL = CudaTuning(threads_per_block=4, elems_per_thread=2, tile_elems=8, max_blocks=2)


def ranks(n, size, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(-9, 10, size).astype(dtype) for _ in range(n)]


def copies(xs):
    return [x.copy() for x in xs]


def assert_same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert g.tobytes() == w.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("tuning", [KernelTuning(), SMALL], ids=["default", "small"])
def test_all_reduce_matches_numpy_in_place_and_out(dtype, n, tuning):
    for size in (0, 1, n - 1, 17):
        for algorithm in ("ring", "tree"):
            for op in ("sum", "max", "min"):
                xs = ranks(n, size, dtype, seed=size)
                want = ringpipe.all_reduce(copies(xs), algorithm, "numpy", op)
                got = ringpipe.all_reduce(copies(xs), algorithm, "cupy", op, tuning=tuning)
                assert_same(got, want)
                outs = [np.empty_like(x) for x in xs]
                frozen = copies(xs)
                got = ringpipe.all_reduce(xs, algorithm, "cupy", op, out=outs, tuning=tuning)
                assert all(g is o for g, o in zip(got, outs, strict=True))
                assert_same(got, want)
                assert_same(xs, frozen)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 4])
def test_other_collectives_match_numpy(dtype, n):
    size = 2 * n + 3
    bounds = ringpipe.chunk_bounds(size, n)
    for op in ("sum", "max"):
        xs = ranks(n, size, dtype, seed=n)
        want = ringpipe.reduce_scatter(copies(xs), backend="numpy", op=op)
        assert_same(ringpipe.reduce_scatter(copies(xs), backend="cupy", op=op, tuning=SMALL),
                    want)
        outs = [np.empty(bounds[r + 1] - bounds[r], dtype) for r in range(n)]
        assert_same(ringpipe.reduce_scatter(copies(xs), backend="cupy", op=op, out=outs), want)
        for root in sorted({0, n - 1}):
            for algorithm in ("ring", "tree"):
                want = ringpipe.reduce(copies(xs), root, algorithm, "numpy", op)
                got = ringpipe.reduce(copies(xs), root, algorithm, "cupy", op, tuning=SMALL)
                assert_same(got, want)
                want = ringpipe.broadcast(copies(xs), root, algorithm, "numpy")
                outs = [np.zeros_like(x) for x in xs]
                assert_same(ringpipe.broadcast(xs, root, algorithm, "cupy", out=outs), want)
    xs = ranks(n, size, dtype, seed=7)
    assert_same(ringpipe.all_gather(copies(xs), backend="cupy", tuning=SMALL),
                ringpipe.all_gather(copies(xs), backend="numpy"))
    pieces = ranks(n, 3, dtype, seed=8)
    outs = [np.zeros(3 * n, dtype) for _ in range(n)]
    got = ringpipe.all_gather(pieces, backend="cupy", out=outs)
    for o in got:
        assert o.tobytes() == np.concatenate(pieces).tobytes()


def test_shaped_buffers_keep_their_shape():
    xs = [np.arange(24, dtype=np.float32).reshape(2, 3, 4) * (r + 1) for r in range(3)]
    got = ringpipe.all_reduce(copies(xs), "tree", "cupy", tuning=SMALL)
    for g in got:
        assert g.shape == (2, 3, 4)
        np.testing.assert_array_equal(g, np.arange(24, dtype=np.float32).reshape(2, 3, 4) * 6)


def rejected(call, bufs, exc, match):
    before = [b.copy() for b in bufs if isinstance(b, np.ndarray)]
    with pytest.raises(exc, match=match):
        call(bufs)
    after = [b for b in bufs if isinstance(b, np.ndarray)]
    for x, y in zip(before, after, strict=True):
        assert x.tobytes() == y.tobytes(), "a buffer was modified before the error"


@pytest.mark.parametrize("name", ["all_reduce", "reduce_scatter", "all_gather", "broadcast",
                                  "reduce"])
def test_bad_input_rejected_before_any_buffer_is_touched(name):
    fn = getattr(ringpipe, name)

    def call(bufs, **kw):
        return fn(bufs, backend="cupy", **kw)

    def good():
        return ranks(4, 6, np.float32)

    rejected(call, [], ValueError, f"{name}: buffers is empty")
    bufs = good()
    bufs[2] = [1.0] * 6
    rejected(call, bufs, TypeError, r"rank 2: buffers\[2\] is a list, expected numpy.ndarray")
    bufs = good()
    bufs[1] = bufs[1].astype(np.float64)
    rejected(call, bufs, TypeError, r"rank 1: buffers\[1\] has dtype float64")
    bufs = good()
    bufs[3] = np.zeros(7, np.float32)
    rejected(call, bufs, ValueError, r"rank 3: buffers\[3\] has shape \(7,\)")
    bufs = good()
    bufs[2] = np.arange(12, dtype=np.float32)[::2]
    rejected(call, bufs, ValueError, r"rank 2: .*not C-contiguous")
    bufs = good()
    bufs[1].flags.writeable = False
    rejected(call, bufs, ValueError, r"rank 1: buffers\[1\] is read-only")
    bufs = good()
    bufs[3] = bufs[0]
    rejected(call, bufs, ValueError, "overlaps")
    rejected(lambda b: call(b, tuning=object()), good(), TypeError, "tuning must be")
    if name != "all_reduce":
        rejected(lambda b: call(b, algorithm="nccl"), good(), ValueError,
                 "unknown algorithm 'nccl'")
    rejected(lambda b: fn(b, backend="numba", tuning=SMALL), good(), TypeError,
             "only backend 'cupy' takes")
    bufs = [np.zeros(4, np.complex64) for _ in range(2)]
    rejected(call, bufs, TypeError, "rank 0: .*unsupported dtype complex64")


def test_out_problems_rejected_first():
    bufs = ranks(4, 6, np.float32)
    outs = [np.zeros(6, np.float32) for _ in range(4)]
    outs[1] = bufs[2]
    rejected(lambda b: ringpipe.all_reduce(b, backend="cupy", out=outs), bufs, ValueError,
             "overlaps")
    outs = [np.zeros(6, np.float32) for _ in range(4)]
    outs[2] = outs[2].astype(np.float16)
    rejected(lambda b: ringpipe.all_reduce(b, backend="cupy", out=outs), bufs, TypeError,
             r"rank 2: out\[2\] has dtype float16")


def test_nccl_is_refused_under_the_simulator_and_off_the_gpu_backend():
    bufs = ranks(2, 4, np.float32)
    rejected(lambda b: ringpipe.all_reduce(b, "nccl", "cupy"), bufs, RuntimeError,
             "simulator .* has no NCCL")
    rejected(lambda b: ringpipe.all_reduce(b, "nccl", "numba"), bufs, ValueError,
             "algorithm 'nccl' needs backend='cupy'")


def test_more_ranks_than_the_kernel_takes():
    bufs = ranks(MAX_RANKS + 1, 3, np.float32)
    rejected(lambda b: ringpipe.all_reduce(b, backend="cupy"), bufs, ValueError,
             f"at most {MAX_RANKS} ranks")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_all_to_all_matches_numpy(dtype, n):
    for blocks in (0, 1, 3):
        xs = ranks(n, n * blocks, dtype, seed=blocks)
        want = ringpipe.all_to_all(copies(xs), backend="numpy")
        assert_same(ringpipe.all_to_all(copies(xs), backend="cupy", tuning=SMALL), want)
        outs = [np.empty_like(x) for x in xs]
        assert_same(ringpipe.all_to_all(copies(xs), backend="cupy", out=outs), want)
