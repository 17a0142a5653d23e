"""IEEE binary16 arithmetic for Numba on the CPU, where ``float16`` arrays do not compile.

Half buffers are viewed as ``uint16`` bit patterns. NumPy adds two float16 values by
widening both to float32, adding in float32, and rounding the sum back to float16 with
round-to-nearest-even (``npy_half_to_float`` / ``npy_float_to_half`` in NumPy's
``halffloat.c``). These helpers reproduce exactly that:

* widening is a 65 536-entry lookup table built by NumPy itself, so it is exact;
* narrowing scales the float32 value by a power of two in float64 (exact) and rounds
  half-to-even with ``np.rint``, which gives the same bits as NumPy's integer routine,
  subnormals, overflow to infinity, and the default quiet NaN included.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


def half_to_float_table() -> np.ndarray:
    """float32 value of every float16 bit pattern, indexed by the pattern."""
    halves = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    with np.errstate(invalid="ignore"):  # signalling-NaN patterns widen to quiet NaNs
        return halves.astype(np.float32)


@njit(cache=True, inline="always")
def float_to_half_bits(x: np.float32) -> np.uint16:
    """Round a float32 to the nearest float16 (ties to even); returns the bit pattern."""
    sign = np.uint16(0x8000) if (x < 0 or (x == 0 and math.copysign(1.0, x) < 0)) else np.uint16(0)
    if x != x:
        return np.uint16(sign | 0x7E00)
    a = abs(np.float64(x))
    if a == math.inf:
        return np.uint16(sign | 0x7C00)
    if a < 6.103515625e-05:  # below 2**-14: subnormal (or zero) half
        return np.uint16(sign | np.uint16(np.rint(a * 16777216.0)))  # a * 2**24
    mant, exp = math.frexp(a)  # a = mant * 2**exp, mant in [0.5, 1)
    e = exp - 1  # a in [2**e, 2**(e+1))
    m = np.rint(math.ldexp(a, 10 - e))  # in [1024, 2048], rounding exact in float64
    bits = ((e + 14) << 10) + np.int64(m)
    if bits >= 0x7C00:
        return np.uint16(sign | 0x7C00)
    return np.uint16(sign | np.uint16(bits))


@njit(cache=True, inline="always")
def half_sum_bits(x: np.uint16, y: np.uint16, a: np.float32, b: np.float32) -> np.uint16:
    """Bits of the float16 sum of patterns ``x`` and ``y`` (``a``, ``b``: their values).

    As NumPy's x86-64 build computes ``npy_float_to_half(npy_half_to_float(x) +
    npy_half_to_float(y))`` (SSE ``addss``, operands as its compiler ordered them; checked
    against NumPy bit for bit in the tests): a NaN operand propagates quieted (bit 9 set)
    with its sign and payload, ``y``'s winning when both are NaN; inf + (-inf) gives the
    x86 default NaN, negative (0xFE00); otherwise the float32 sum rounded to nearest even.
    """
    if (y & 0x7C00) == 0x7C00 and (y & 0x03FF) != 0:
        return np.uint16(y | 0x0200)
    if (x & 0x7C00) == 0x7C00 and (x & 0x03FF) != 0:
        return np.uint16(x | 0x0200)
    total = np.float32(a + b)
    if total != total:
        return np.uint16(0xFE00)
    return float_to_half_bits(total)
