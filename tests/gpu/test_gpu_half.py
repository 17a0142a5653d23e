"""The GPU kernel's float16 helpers (kernels/cuda/half.py) against NumPy, bit for bit.

The kernel compiles these functions with ``numba.cuda.jit``; here the same source is
compiled with ``numba.njit`` (and run as plain Python, as the simulator does) and
compared with NumPy on every half, millions of float32 values and sums of random and
special pairs, NaN payloads included.
"""

import numpy as np
import pytest
from numba import njit

from ringpipe.kernels.cuda.half import half_ops

CPU = half_ops(njit(cache=False))
PY = half_ops(lambda f: f)
ALL_HALVES = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
SPECIALS = np.array([0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7D01, 0xFD01, 0x0001,
                     0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF, 0x3555],
                    dtype=np.uint16)


@njit
def _widen_all(widen, bits):
    out = np.empty(bits.size, np.float32)
    for i in range(bits.size):
        out[i] = widen(bits[i])
    return out


@njit
def _narrow_all(narrow, values):
    out = np.empty(values.size, np.uint16)
    for i in range(values.size):
        out[i] = narrow(values[i])
    return out


@njit
def _add_all(add, a, b):
    out = np.empty(a.size, np.uint16)
    for i in range(a.size):
        out[i] = add(a[i], b[i])
    return out


def numpy_add(a, b):
    with np.errstate(all="ignore"):
        return (a.view(np.float16) + b.view(np.float16)).view(np.uint16)


def test_widening_every_half_is_exact():
    want = ALL_HALVES.view(np.float16).astype(np.float32)
    got = _widen_all(CPU.widen, ALL_HALVES)
    finite = ~np.isnan(want)
    np.testing.assert_array_equal(got[finite].view(np.uint32), want[finite].view(np.uint32))
    assert np.isnan(got[~finite]).all()


def test_narrowing_rounds_to_nearest_even_like_numpy():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**32, 2_000_000, dtype=np.uint32).view(np.float32)
    halves = ALL_HALVES.view(np.float16).astype(np.float64)
    halves = np.unique(halves[np.isfinite(halves)])
    ties = ((halves[:-1] + halves[1:]) / 2).astype(np.float32)  # exact ties in float32
    values = np.concatenate([values, ties, np.nextafter(ties, np.float32(np.inf)),
                             np.nextafter(ties, np.float32(-np.inf)),
                             np.array([65504, 65519.99, 65520, 2.0**-25, -(2.0**-26)],
                                      np.float32)])
    values = values[~np.isnan(values)]
    with np.errstate(over="ignore"):
        want = values.astype(np.float16).view(np.uint16)
    np.testing.assert_array_equal(_narrow_all(CPU.narrow, values), want)
    assert _narrow_all(CPU.narrow, np.array([np.nan], np.float32))[0] == 0x7E00


def test_sums_of_random_pairs_and_every_half_with_specials():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 1 << 16, 2_000_000, dtype=np.uint32).astype(np.uint16)
    b = rng.integers(0, 1 << 16, 2_000_000, dtype=np.uint32).astype(np.uint16)
    a = np.concatenate([a, np.repeat(SPECIALS, ALL_HALVES.size),
                        np.tile(ALL_HALVES, SPECIALS.size)])
    b = np.concatenate([b, np.tile(ALL_HALVES, SPECIALS.size),
                        np.repeat(SPECIALS, ALL_HALVES.size)])
    np.testing.assert_array_equal(_add_all(CPU.add, a, b), numpy_add(a, b))


@pytest.mark.parametrize("seed", [2, 3])
def test_the_python_path_the_simulator_runs_agrees(seed):
    rng = np.random.default_rng(seed)
    a = np.concatenate([SPECIALS, rng.integers(0, 1 << 16, 1500).astype(np.uint16)])
    b = np.concatenate([SPECIALS[::-1], rng.integers(0, 1 << 16, 1500).astype(np.uint16)])
    want = numpy_add(a, b)
    with np.errstate(all="ignore"):
        got = np.array([PY.add(x, y) for x, y in zip(a, b, strict=True)], np.uint16)
    np.testing.assert_array_equal(got, want)
