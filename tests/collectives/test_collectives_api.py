"""Collectives on in-process ranks against a plain NumPy reduction.

Properties: exact results for integer-valued inputs, bitwise-identical ranks, and the
numba executor bitwise equal to the numpy executor, for N in 1..16, sizes 0..~1e5
(primes and sizes below N included), every dtype, op and algorithm.
"""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ringpipe
from ringpipe import KernelTuning, chunk_bounds

DTYPES = [np.float16, np.float32, np.float64, np.int32, np.int64]
OPS = {"sum": np.sum, "max": np.max, "min": np.min}
SIZES = st.one_of(st.integers(0, 40), st.sampled_from([97, 1009, 4099, 65537, 99991, 100003]),
                  st.integers(0, 100_000))
# Small tiles force many tiles per chunk, and a low threshold forces the parallel path.
TUNINGS = [ringpipe.KernelTuning(), KernelTuning(tile_bytes=256, parallel_min_bytes=0)]


def integer_inputs(seed, n, size, dtype):
    rng = np.random.default_rng(seed)
    return [rng.integers(-8, 9, size).astype(dtype) for _ in range(n)]


def expected(inputs, op):
    stacked = np.stack([x.astype(np.int64) for x in inputs])
    return OPS[op](stacked, axis=0).astype(inputs[0].dtype)


def assert_bitwise(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


@pytest.mark.slow  # ~40 s on 2 cores
@given(n=st.integers(1, 16), size=SIZES, dtype=st.sampled_from(DTYPES),
       algorithm=st.sampled_from(["ring", "tree"]), op=st.sampled_from(list(OPS)),
       seed=st.integers(0, 2**32 - 1), tuning=st.sampled_from(TUNINGS))
def test_all_reduce_exact_and_bitwise(n, size, dtype, algorithm, op, seed, tuning):
    inputs = integer_inputs(seed, n, size, dtype)
    want = expected(inputs, op)
    by_numpy = ringpipe.all_reduce([x.copy() for x in inputs], algorithm, "numpy", op)
    by_numba = ringpipe.all_reduce([x.copy() for x in inputs], algorithm, "numba", op,
                                   tuning=tuning)
    for r in range(n):
        assert_bitwise(by_numpy[r], want)
        assert_bitwise(by_numba[r], by_numpy[r])


@given(n=st.integers(1, 16), size=SIZES, dtype=st.sampled_from([np.float16, np.float32,
                                                                  np.float64]),
       algorithm=st.sampled_from(["ring", "tree"]), seed=st.integers(0, 2**32 - 1))
def test_all_reduce_random_floats(n, size, dtype, algorithm, seed):
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(size).astype(dtype) for _ in range(n)]
    ref = np.sum(np.stack([x.astype(np.float64) for x in inputs]), axis=0)
    by_numpy = ringpipe.all_reduce([x.copy() for x in inputs], algorithm, "numpy")
    by_numba = ringpipe.all_reduce([x.copy() for x in inputs], algorithm, "numba",
                                   tuning=TUNINGS[1])
    eps = float(np.finfo(dtype).eps)
    scale = np.sum(np.abs(np.stack([x.astype(np.float64) for x in inputs])), axis=0)
    for r in range(n):
        assert_bitwise(by_numba[r], by_numpy[r])
        assert_bitwise(by_numpy[r], by_numpy[0])  # every rank bitwise identical
        np.testing.assert_array_less(np.abs(by_numpy[r] - ref), (n * eps) * scale + 1e-30)


@given(n=st.integers(1, 12), size=SIZES, dtype=st.sampled_from(DTYPES),
       algorithm=st.sampled_from(["ring", "tree"]), backend=st.sampled_from(["numpy", "numba"]),
       seed=st.integers(0, 2**32 - 1))
def test_out_of_place_matches_in_place_and_keeps_inputs(n, size, dtype, algorithm, backend,
                                                        seed):
    inputs = integer_inputs(seed, n, size, dtype)
    frozen = [x.copy() for x in inputs]
    outs = [np.full(size, 99, dtype=dtype) for _ in range(n)]
    got = ringpipe.all_reduce(inputs, algorithm, backend, out=outs)
    assert all(g is o for g, o in zip(got, outs, strict=True))
    in_place = ringpipe.all_reduce([x.copy() for x in inputs], algorithm, "numpy")
    for r in range(n):
        assert_bitwise(inputs[r], frozen[r])
        assert_bitwise(outs[r], in_place[r])


@given(n=st.integers(1, 16), size=SIZES, dtype=st.sampled_from(DTYPES),
       op=st.sampled_from(list(OPS)), backend=st.sampled_from(["numpy", "numba"]),
       seed=st.integers(0, 2**32 - 1), in_place=st.booleans())
def test_reduce_scatter(n, size, dtype, op, backend, seed, in_place):
    inputs = integer_inputs(seed, n, size, dtype)
    want = expected(inputs, op)
    b = chunk_bounds(size, n)
    if in_place:
        got = ringpipe.reduce_scatter(inputs, backend=backend, op=op)
    else:
        outs = [np.empty(int(b[r + 1] - b[r]), dtype) for r in range(n)]
        got = ringpipe.reduce_scatter(inputs, backend=backend, op=op, out=outs)
    for r in range(n):
        assert_bitwise(got[r], want[b[r]:b[r + 1]])


@given(n=st.integers(1, 16), piece=st.integers(0, 3000), dtype=st.sampled_from(DTYPES),
       backend=st.sampled_from(["numpy", "numba"]), seed=st.integers(0, 2**32 - 1))
def test_all_gather(n, piece, dtype, backend, seed):
    pieces = integer_inputs(seed, n, piece, dtype)
    full = np.concatenate(pieces)
    outs = [np.zeros(n * piece, dtype) for _ in range(n)]
    ringpipe.all_gather(pieces, backend=backend, out=outs)
    bufs = [np.zeros(n * piece, dtype) for _ in range(n)]  # in place: own piece in chunk r
    for r in range(n):
        bufs[r][r * piece:(r + 1) * piece] = pieces[r]
    ringpipe.all_gather(bufs, backend=backend)
    for r in range(n):
        assert_bitwise(outs[r], full)
        assert_bitwise(bufs[r], full)


@given(n=st.integers(1, 16), size=SIZES, dtype=st.sampled_from(DTYPES),
       algorithm=st.sampled_from(["ring", "tree"]), backend=st.sampled_from(["numpy", "numba"]),
       op=st.sampled_from(list(OPS)), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_broadcast_and_reduce(n, size, dtype, algorithm, backend, op, data, seed):
    root = data.draw(st.integers(0, n - 1))
    inputs = integer_inputs(seed, n, size, dtype)
    got = ringpipe.broadcast([x.copy() for x in inputs], root, algorithm, backend)
    for r in range(n):
        assert_bitwise(got[r], inputs[root])
    reduced = ringpipe.reduce([x.copy() for x in inputs], root, algorithm, backend, op)
    assert_bitwise(reduced[root], expected(inputs, op))
    outs = [np.empty_like(x) for x in inputs]
    ringpipe.reduce(inputs, root, algorithm, backend, op, out=outs)
    assert_bitwise(outs[root], expected(inputs, op))


def test_multidimensional_buffers_reduce_elementwise():
    xs = [np.arange(24, dtype=np.float64).reshape(2, 3, 4) * (r + 1) for r in range(3)]
    got = ringpipe.all_reduce(xs, "tree")
    np.testing.assert_array_equal(got[1], np.arange(24.0).reshape(2, 3, 4) * 6)
    assert got[1].shape == (2, 3, 4)


def test_integer_sum_wraps_like_numpy():
    big = np.iinfo(np.int32).max
    xs = [np.array([big, -5], np.int32) for _ in range(3)]
    want = (np.array([big, -5], np.int32) * np.int32(3))  # wraps modulo 2**32
    for backend in ("numpy", "numba"):
        got = ringpipe.all_reduce([x.copy() for x in xs], backend=backend)
        assert_bitwise(got[0], want)


@pytest.mark.parametrize("algorithm", ["ring", "tree"])
def test_float16_matches_numpy_rounding_bitwise(algorithm):
    rng = np.random.default_rng(7)
    # wide dynamic range: subnormals, ties, overflow to inf
    xs = [(rng.standard_normal(5000) * 10.0 ** rng.integers(-7, 5, 5000)).astype(np.float16)
          for _ in range(7)]
    a = ringpipe.all_reduce([x.copy() for x in xs], algorithm, "numpy")
    b = ringpipe.all_reduce([x.copy() for x in xs], algorithm, "numba")
    for r in range(7):
        assert_bitwise(a[r], b[r])
        assert_bitwise(a[r], a[0])


def _special_values(dtype):
    """±0, ±inf, NaNs with payloads and signs, and ordinary numbers, as dtype arrays."""
    if dtype == np.float16:
        bits = np.array([0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7D01, 0xFD02,
                         0x3C00, 0xBC00, 0x0001, 0x7BFF], np.uint16)
        return bits.view(np.float16)
    if dtype == np.float32:
        bits = np.array([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000,
                         0x7FC00002, 0xFFC00001, 0x3F800000, 0xBF800000, 1, 0x7F7FFFFF],
                        np.uint32)
        return bits.view(np.float32)
    return _special_values(np.float32).astype(np.float64)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("op", ["max", "min", "sum"])
@pytest.mark.parametrize("algorithm", ["ring", "tree"])
def test_signed_zeros_infinities_and_nans_match_numpy_bits(dtype, op, algorithm):
    vals = _special_values(dtype)
    rng = np.random.default_rng(5)
    xs = [rng.choice(vals, 997) for _ in range(5)]
    with np.errstate(all="ignore"):
        a = ringpipe.all_reduce([x.copy() for x in xs], algorithm, "numpy", op)
        b = ringpipe.all_reduce([x.copy() for x in xs], algorithm, "numba", op)
    for r in range(5):
        if op == "sum" and dtype != np.float16:
            # float32/64 NaN payloads of a sum depend on operand order inside the CPU's
            # vector unit; positions and every non-NaN bit must still agree.
            nan = np.isnan(a[r])
            assert np.array_equal(nan, np.isnan(b[r]))
            assert a[r][~nan].tobytes() == b[r][~nan].tobytes()
        else:
            assert_bitwise(b[r], a[r])


def test_auto_algorithm_follows_the_cost_model_and_says_why():
    from ringpipe.collectives.api import auto_algorithm

    small, why_small = auto_algorithm("all_reduce", 1024, 8)
    large, why_large = auto_algorithm("all_reduce", 64 << 20, 8)
    assert (small, large) == ("tree", "ring")  # latency-bound vs bandwidth-bound
    assert "latency-bound" in why_small and "bandwidth-bound" in why_large
    xs = integer_inputs(1, 8, 256, np.float32)
    got = ringpipe.all_reduce([x.copy() for x in xs], "auto")
    want = ringpipe.all_reduce([x.copy() for x in xs], small, "numpy")
    assert_bitwise(got[3], want[3])
    with pytest.raises(ValueError, match="unknown algorithm 'auto'"):
        ringpipe.reduce_scatter([x.copy() for x in xs], "auto")


@given(n=st.integers(1, 9), size=SIZES, dtype=st.sampled_from(DTYPES),
       algorithm=st.sampled_from(["ring", "tree"]), backend=st.sampled_from(["numpy", "numba"]),
       op=st.sampled_from(list(OPS)), seed=st.integers(0, 2**32 - 1), use_out=st.booleans())
def test_persistent_all_reduce_matches_one_shot(n, size, dtype, algorithm, backend, op, seed,
                                                use_out):
    from ringpipe.collectives.persistent import all_reduce_init

    bufs = integer_inputs(seed, n, size, dtype)
    outs = [np.empty_like(b) for b in bufs] if use_out else None
    handle = all_reduce_init(bufs, algorithm, backend, op, out=outs)
    for step in range(2):  # refill in place, start again
        fresh = integer_inputs(seed + step, n, size, dtype)
        for b, f in zip(bufs, fresh, strict=True):
            b[...] = f
        got = handle()
        want = ringpipe.all_reduce([f.copy() for f in fresh], algorithm, "numpy", op)
        for r in range(n):
            assert_bitwise(got[r], want[r])


def test_persistent_all_reduce_checks_once_up_front():
    from ringpipe.collectives.persistent import all_reduce_init

    bufs = integer_inputs(0, 3, 10, np.float32)
    bufs[2] = bufs[2][:5].copy()
    with pytest.raises(ValueError, match=r"all_reduce_init: rank 2: buffers\[2\] has shape"):
        all_reduce_init(bufs)
    with pytest.raises(ValueError, match="no persistent form"):
        all_reduce_init(integer_inputs(0, 2, 4, np.float32), backend="cupy")


@pytest.mark.parametrize("kwargs,error,fragment", [
    ({"tile_bytes": "x"}, TypeError, "KernelTuning.tile_bytes must be an int"),
    ({"tile_bytes": None}, TypeError, "KernelTuning.tile_bytes must be an int"),
    ({"tile_bytes": 100.7}, TypeError, "KernelTuning.tile_bytes must be an int"),
    ({"tile_bytes": 10**30}, ValueError, "KernelTuning.tile_bytes must be <="),
    ({"tile_bytes": 32}, ValueError, "KernelTuning.tile_bytes must be >= 64"),
    ({"parallel_min_bytes": float("inf")}, TypeError, "KernelTuning.parallel_min_bytes"),
    ({"parallel_min_bytes": -1}, ValueError, "KernelTuning.parallel_min_bytes must be >= 0"),
])
def test_kernel_tuning_refuses_bad_fields_when_made(kwargs, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        KernelTuning(**kwargs)
