"""``ringpipe.all_to_all`` against an independent NumPy reference (a block transpose).

Every dtype the other collectives support, N in 1..16, sizes from 0 to ~1e5 elements
per rank, numpy and numba executors (bitwise equal), in place and with ``out=``; and
bad input refused before any buffer is touched.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ringpipe
from ringpipe import KernelTuning
from ringpipe.collectives.checks import SUPPORTED_DTYPES

TUNINGS = [KernelTuning(), KernelTuning(tile_bytes=256, parallel_min_bytes=0)]


def inputs(seed, n, blocks, dtype):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        return [rng.integers(-10**6, 10**6, n * blocks).astype(dtype) for _ in range(n)]
    return [(rng.standard_normal(n * blocks) * 100).astype(dtype) for _ in range(n)]


def transpose_reference(xs):
    """Rank r's result: block r of every rank, in rank order (no ringpipe code)."""
    n = len(xs)
    stacked = np.stack([x.reshape(n, -1) for x in xs])  # [src, dst, elements]
    return [np.ascontiguousarray(stacked[:, r, :]).reshape(-1) for r in range(n)]


@given(n=st.integers(1, 16), blocks=st.one_of(st.integers(0, 9), st.integers(0, 6000)),
       dtype=st.sampled_from(SUPPORTED_DTYPES), seed=st.integers(0, 2**32 - 1),
       tuning=st.sampled_from(TUNINGS))
def test_matches_the_block_transpose_bitwise(n, blocks, dtype, seed, tuning):
    xs = inputs(seed, n, blocks, dtype)
    want = transpose_reference(xs)
    by_numpy = ringpipe.all_to_all([x.copy() for x in xs], backend="numpy")
    by_numba = ringpipe.all_to_all([x.copy() for x in xs], backend="numba", tuning=tuning)
    outs = [np.empty_like(x) for x in xs]
    frozen = [x.copy() for x in xs]
    by_out = ringpipe.all_to_all(xs, backend="numba", out=outs, tuning=tuning)
    assert all(o is b for o, b in zip(outs, by_out, strict=True))
    for r in range(n):
        for got in (by_numpy[r], by_numba[r], by_out[r]):
            assert got.dtype == want[r].dtype and got.tobytes() == want[r].tobytes()
        assert xs[r].tobytes() == frozen[r].tobytes()  # out= leaves the inputs alone


def test_shaped_buffers_keep_their_shape():
    xs = [np.arange(24, dtype=np.float64).reshape(2, 3, 4) + 100 * r for r in range(3)]
    got = ringpipe.all_to_all([x.copy() for x in xs])
    for r, g in enumerate(got):
        assert g.shape == (2, 3, 4)
        assert np.array_equal(g.reshape(-1), transpose_reference(xs)[r])


def test_twice_is_the_identity():
    xs = inputs(3, 6, 5, np.float32)
    twice = ringpipe.all_to_all(ringpipe.all_to_all([x.copy() for x in xs]))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(twice, xs, strict=True))


def test_bad_input_is_refused_before_anything_moves():
    xs = [np.arange(6, dtype=np.float64) for _ in range(4)]
    frozen = [x.copy() for x in xs]
    with pytest.raises(ValueError, match="all_to_all: buffers have 6 elements, not a multiple "
                                         "of the 4 ranks"):
        ringpipe.all_to_all(xs)
    with pytest.raises(ValueError, match="unknown algorithm 'ring'"):
        ringpipe.all_to_all([np.zeros(4)] * 1, algorithm="ring")
    with pytest.raises(TypeError, match="rank 1: buffers\\[1\\] has dtype float32"):
        ringpipe.all_to_all([np.zeros(4), np.zeros(4, np.float32)])
    with pytest.raises(ValueError, match="rank 1: out\\[1\\] has shape"):
        ringpipe.all_to_all([np.zeros(4), np.zeros(4)], out=[np.zeros(4), np.zeros(2)])
    with pytest.raises(ValueError, match="overlaps"):
        shared = np.zeros(8)
        ringpipe.all_to_all([shared[:4], shared[2:6]])
    assert all(a.tobytes() == b.tobytes() for a, b in zip(xs, frozen, strict=True))
