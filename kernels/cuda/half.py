"""float16 arithmetic on ``uint16`` bit patterns, written once for three targets.

The GPU kernel (:mod:`ringpipe.kernels.cuda.executor`) must reproduce NumPy's float16
reduction bit for bit. NumPy adds two halves by widening both to float32, adding in
float32 (one rounding) and narrowing the sum to float16 with round-to-nearest-even (a
second rounding): ``npy_half_to_float`` / ``npy_float_to_half`` in NumPy's
``halffloat.c``. A native ``__hadd`` rounds the exact sum once, so it can differ from
NumPy in the last bit (double rounding); hence this emulation.

The two functions below use only integer operations, comparisons, ``math.ldexp``,
``math.frexp``, ``math.floor`` and ``math.copysign`` on scalars, so the *same source*

* runs as plain Python under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``),
* compiles with ``numba.cuda.jit(device=True)`` for the GPU, and
* compiles with ``numba.njit`` on the CPU, which is how the tests compare them with
  NumPy on every half and on millions of float32 values.

:func:`half_ops` builds the compiled set for one target from a decorator.

Widening: a half with exponent field e and mantissa m is m·2⁻²⁴ when e = 0 (subnormal),
(1024 + m)·2^(e-25) when 0 < e < 31, and ±inf or NaN when e = 31; every such value is
exact in float32. Narrowing x ≥ 0 (float32, exact in float64): below 2⁻¹⁴ the half is
subnormal with mantissa rne(x·2²⁴); otherwise with x ∈ [2^k, 2^(k+1)) the significand
is rne(x·2^(10-k)) ∈ [1024, 2048] and the bits are ((k+14) << 10) + significand, the
carry of a round-up to 2048 stepping the exponent exactly as IEEE requires; bits
≥ 0x7C00 overflow to infinity. ``rne`` rounds half to even; the scalings by powers of
two are exact in float64, so only that one rounding happens. NaN narrows to 0x7E00,
as :func:`ringpipe.kernels.half.float_to_half_bits` does.

NaN sums: IEEE 754 leaves NaN payloads to the hardware, and NumPy inherits its CPU's
rules. :func:`half_ops`' ``add`` reproduces x86-64's (where the tests run): a NaN
operand propagates with its sign and payload, quieted (the second one if both are NaN,
as NumPy's float16 loop gives), and ``inf + -inf`` gives x86's default NaN, which is
negative (half 0xFE00). Being integer emulation, it gives these bits on the GPU too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

#: Largest value below the smallest normal half, 2**-14.
_MIN_NORMAL = 6.103515625e-05


def half_bits_to_float(h: np.uint16) -> np.float32:
    """The float32 value of the half whose bit pattern is ``h`` (exact)."""
    e = int((h >> 10) & 0x1F)
    m = int(h & 0x3FF)
    if e == 0:
        v = math.ldexp(np.float64(m), -24)
    elif e == 31:
        v = math.inf if m == 0 else math.nan
    else:
        v = math.ldexp(np.float64(m + 1024), e - 25)
    if h & 0x8000:
        v = -v
    return np.float32(v)


def float_to_half_bits_rne(x: np.float32) -> np.uint16:
    """Round a float32 to the nearest half, ties to even; returns the bit pattern."""
    if x != x:
        return np.uint16(0x7E00)
    a = np.float64(x)
    sign = 0
    if a < 0 or (a == 0 and math.copysign(1.0, a) < 0):
        sign = 0x8000
        a = -a
    if a == math.inf:
        return np.uint16(sign | 0x7C00)
    if a < _MIN_NORMAL:
        y = a * 16777216.0  # a * 2**24, exact
        scaled = 0  # exponent field 0: the subnormal mantissa is all there is
    else:
        _, exp = math.frexp(a)  # a = f * 2**exp with f in [0.5, 1)
        k = exp - 1
        y = math.ldexp(a, 10 - k)  # in [1024, 2048), exact
        scaled = (k + 14) << 10
    f = math.floor(y)
    rest = y - f
    if rest > 0.5 or (rest == 0.5 and int(f) % 2 == 1):
        f += 1.0
    bits = scaled + int(f)
    if bits >= 0x7C00:
        return np.uint16(sign | 0x7C00)
    return np.uint16(sign | bits)


class HalfOps(NamedTuple):
    """The float16 helpers compiled for one target (see :func:`half_ops`)."""

    widen: Callable[[np.uint16], np.float32]
    narrow: Callable[[np.float32], np.uint16]
    add: Callable[[np.uint16, np.uint16], np.uint16]


def half_ops(jit: Callable[[Callable], Callable]) -> HalfOps:
    """Compile the helpers with ``jit`` and build NumPy's float16 ``add`` on bit patterns.

    ``jit`` is ``numba.cuda.jit(device=True)`` for the GPU kernel, ``numba.njit`` for a CPU
    check, or ``lambda f: f`` to run them as Python.
    """
    widen = jit(half_bits_to_float)
    narrow = jit(float_to_half_bits_rne)

    def add(a: np.uint16, b: np.uint16) -> np.uint16:
        x = widen(a)
        y = widen(b)
        if y != y:  # a NaN operand: itself, quieted; the second if both are NaN
            return np.uint16(b | 0x0200)
        if x != x:
            return np.uint16(a | 0x0200)
        s = np.float32(x + y)
        if s != s:  # inf + -inf: x86-64's default NaN, negative
            return np.uint16(0xFE00)
        return narrow(s)

    return HalfOps(widen, narrow, jit(add))
