"""Column/row-parallel linear layers and Megatron's f/g, on lists of tp ranks."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ringpipe
from ringpipe.model import layers as L


class CountingSum:
    """A plain-NumPy all-reduce that also checks what the collective requires."""

    def __init__(self):
        self.calls = 0

    def __call__(self, bufs):
        self.calls += 1
        assert all(b.flags.c_contiguous and b.flags.writeable for b in bufs)
        assert len({(b.shape, b.dtype) for b in bufs}) == 1
        for i, a in enumerate(bufs):
            for b in bufs[:i]:
                assert not np.shares_memory(a, b)
        total = np.sum(np.stack(bufs), axis=0)
        for b in bufs:
            b[...] = total


dims = st.integers(1, 5)


@given(tp=st.sampled_from([1, 2, 4]), n=dims, k=dims, m=dims, seed=st.integers(0, 99))
def test_column_then_row_parallel_equal_full_matmuls(tp, n, k, m, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, k))
    a, ab = rng.standard_normal((k, m * tp)), rng.standard_normal(m * tp)
    b, bb = rng.standard_normal((m * tp, k)), rng.standard_normal(k)
    ar = CountingSum()
    ys = L.column_parallel_forward([x] * tp, np.split(a, tp, axis=1), np.split(ab, tp))
    assert ar.calls == 0
    np.testing.assert_allclose(np.concatenate(ys, axis=1), x @ a + ab, rtol=1e-12, atol=1e-12)
    zs = L.row_parallel_forward(ys, np.split(b, tp, axis=0), [bb] * tp, ar)
    assert ar.calls == 1
    want = (x @ a + ab) @ b + bb
    for z in zs:
        np.testing.assert_allclose(z, want, rtol=1e-12, atol=1e-12)
        assert np.array_equal(z, zs[0])
    # backward: dY from row-parallel (no comm), dX through f (one all-reduce)
    dz = rng.standard_normal(want.shape)
    dys = L.row_parallel_backward_input([dz] * tp, np.split(b, tp, axis=0))
    np.testing.assert_allclose(np.concatenate(dys, axis=1), dz @ b.T, rtol=1e-12, atol=1e-12)
    dxs = L.column_parallel_backward_input(dys, np.split(a, tp, axis=1), ar)
    assert ar.calls == 2
    for dx in dxs:
        np.testing.assert_allclose(dx, dz @ b.T @ a.T, rtol=1e-12, atol=1e-12)
    # weight gradients: column blocks of dA, row blocks of dB, db replicated
    da = [L.linear_backward_weight(x, dy) for dy in dys]
    np.testing.assert_allclose(np.concatenate([g for g, _ in da], axis=1), x.T @ (dz @ b.T),
                               rtol=1e-12, atol=1e-12)
    db = [L.linear_backward_weight(y, d) for y, d in zip(ys, [dz] * tp, strict=True)]
    np.testing.assert_allclose(np.concatenate([g for g, _ in db], axis=0),
                               (x @ a + ab).T @ dz, rtol=1e-12, atol=1e-12)
    assert all(np.array_equal(bias, dz.sum(axis=0)) for _, bias in db)


def test_f_and_g_semantics():
    ar = CountingSum()
    xs = [np.ones(3), 2 * np.ones(3)]
    assert L.f_forward(xs) is xs and L.g_backward(xs) is xs and ar.calls == 0
    out = L.g_forward([np.ones(3), 2 * np.ones(3)], ar)
    assert ar.calls == 1 and all(np.array_equal(o, 3 * np.ones(3)) for o in out)
    out = L.f_backward([np.ones(3), 2 * np.ones(3)], ar)
    assert ar.calls == 2 and all(np.array_equal(o, 3 * np.ones(3)) for o in out)


def test_reduce_copies_buffers_the_collective_cannot_use():
    ar = CountingSum()
    base = np.arange(12.0).reshape(3, 4)
    strided = base[:, ::2]  # not contiguous
    frozen = np.ones((3, 2))
    frozen.flags.writeable = False
    out = L.g_forward([strided, strided, frozen], ar)  # aliasing + read-only
    assert np.array_equal(base, np.arange(12.0).reshape(3, 4))  # caller's data untouched
    assert np.array_equal(out[0], 2 * base[:, ::2] + 1)
    owned = [np.zeros(2), np.ones(2)]
    out = L.f_backward(owned, ar)
    assert out[0] is owned[0] and np.array_equal(owned[0], np.ones(2))  # in place


@pytest.mark.parametrize("algorithm", ["ring", "tree"])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_with_ringpipe_all_reduce(algorithm, backend):
    rng = np.random.default_rng(0)
    tp, x = 4, rng.standard_normal((6, 8))
    w, bias = rng.standard_normal((8, 5)), rng.standard_normal(5)

    def all_reduce(bufs):
        ringpipe.all_reduce(bufs, algorithm=algorithm, backend=backend)

    zs = L.row_parallel_forward(np.split(x, tp, axis=1), np.split(w, tp, axis=0),
                                [bias] * tp, all_reduce)
    for z in zs:
        np.testing.assert_allclose(z, x @ w + bias, rtol=1e-12, atol=1e-12)
        assert np.array_equal(z, zs[0])


def test_check_all_reduce():
    with pytest.raises(TypeError, match="all_reduce"):
        L.check_all_reduce("ring")
    L.check_all_reduce(CountingSum())
