"""float16 arithmetic for Numba matches NumPy's bits exactly."""

import numpy as np
from numba import njit

from ringpipe.kernels.half import float_to_half_bits, half_to_float_table


@njit(cache=True)
def _narrow_all(values):
    out = np.empty(values.size, np.uint16)
    for i in range(values.size):
        out[i] = float_to_half_bits(values[i])
    return out


def _numpy_bits(values):
    with np.errstate(over="ignore", invalid="ignore"):
        return values.astype(np.float16).view(np.uint16)


def test_widening_table_is_numpy():
    table = half_to_float_table()
    halves = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    np.testing.assert_array_equal(table.view(np.uint32), halves.astype(np.float32).view(np.uint32))


def test_every_half_round_trips():
    table = half_to_float_table()
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    finite = ~np.isnan(table)
    np.testing.assert_array_equal(_narrow_all(table)[finite], bits[finite])
    assert np.all((_narrow_all(table[~finite]) & 0x7C00) == 0x7C00)  # NaN stays NaN
    assert np.all((_narrow_all(table[~finite]) & 0x03FF) != 0)


def test_ties_and_neighbours_round_to_nearest_even():
    table = half_to_float_table()
    finite = table[np.isfinite(table)].astype(np.float64)
    finite = np.unique(finite)
    mids = ((finite[:-1] + finite[1:]) / 2).astype(np.float32)  # exact ties in float32
    probes = np.concatenate([mids, np.nextafter(mids, np.float32(np.inf)),
                             np.nextafter(mids, np.float32(-np.inf))]).astype(np.float32)
    np.testing.assert_array_equal(_narrow_all(probes), _numpy_bits(probes))


def test_random_float32_bit_patterns():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**32, 2_000_000, dtype=np.uint32).view(np.float32)
    values = values[~np.isnan(values)]
    np.testing.assert_array_equal(_narrow_all(values), _numpy_bits(values))


def test_overflow_underflow_and_signed_zero():
    values = np.array([65504, 65519.99, 65520, 1e6, -1e6, np.inf, -np.inf, 0.0, -0.0,
                       2.0**-25, 2.0**-25 * 1.0000001, -(2.0**-26), 2.0**-24 * 1.5], np.float32)
    np.testing.assert_array_equal(_narrow_all(values), _numpy_bits(values))
