"""Raw buffer addresses, obtained as cheaply as Python allows.

The executors pass rank buffers to compiled code as addresses, and the argument checks
compare address ranges to refuse overlapping rank buffers. ``ndarray.ctypes.data`` and
``__array_interface__`` cost microseconds each; mapping a ctypes object onto the buffer
costs a fraction of that, which matters for small-message latency.
"""

from __future__ import annotations

import ctypes

import numpy as np


def data_address(buffer: np.ndarray) -> int:
    """Address of an array's first element (its base address when it is empty)."""
    if buffer.flags.writeable and buffer.nbytes:
        return ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    return buffer.__array_interface__["data"][0]  # read-only buffers refuse from_buffer


def addresses(buffers: list[np.ndarray]) -> np.ndarray:
    """uint64 array of the data addresses of non-empty ``buffers``."""
    return np.array([data_address(b) for b in buffers], dtype=np.uint64)
