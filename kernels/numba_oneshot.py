"""The one-shot small-message path: check plain buffers and run the kernel in one call.

In place or out of place (``out=``: inputs and outputs are checked together, all 2N
plain, writeable and disjoint; read-only inputs or an output that is its own input take
the full checks).

A one-shot ``all_reduce`` of 8 × 4 KiB does about a microsecond of arithmetic, and
the generic path spends twenty times that in Python: reading every rank's flags, shape
and address, comparing address ranges, and a kernel call with fifteen arguments. Here
the ranks' object ids go to one compiled function that checks them
(:func:`ringpipe.kernels.memory.plain_status`: plain, writeable, C-contiguous ndarrays
of one dtype and shape that do not overlap) and, only if they pass, runs the same
tile-fused kernel as :func:`~ringpipe.kernels.numba_exec.run_table_numba` with the
same tiling (:func:`~ringpipe.kernels.numba_exec.launch_geometry`), so the results are
bitwise those of the generic path and of the NumPy reference. If they do not pass,
nothing is touched and the caller runs the full checks, which name the problem.
Launches large enough for the parallel kernel check in compiled code too
(:func:`~ringpipe.kernels.memory.plain_addresses`) but start the kernel from Python,
as the generic path does: there a few microseconds do not matter.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from ringpipe.kernels.memory import LAYOUT_WORDS, plain_addresses, plain_status
from ringpipe.kernels.numba_exec import (
    _HALF_TO_FLOAT,
    _LIKE,
    KernelTuning,
    _run_parallel,
    _run_serial,
    launch_geometry,
)
from ringpipe.kernels.ops import OPCODES
from ringpipe.kernels.steps import StepTable


@njit(cache=True)
def _checked_run(ids: np.ndarray, layout: np.ndarray, copy_in: bool, nitems: int,
                 tiles_per_chunk: int, tile: int, n: int, bounds: np.ndarray, ptr: np.ndarray,
                 srcs: np.ndarray, dsts: np.ndarray, reds: np.ndarray, opcode: int,
                 like: np.ndarray, lut: np.ndarray) -> int:
    """Run the serial kernel on the arrays whose object ids are ``ids`` if
    :func:`plain_status` accepts them (returns 0); else touch nothing and return 1.
    In place ``ids`` are the ranks' buffers; with ``copy_in`` the ranks' inputs and then
    their outputs (2N ids), and each tile is copied from input to output first."""
    addr = np.empty(ids.size, np.uint64)
    if plain_status(ids, layout, like.itemsize, addr):
        return 1
    if copy_in:
        half = ids.size // 2
        _run_serial(nitems, tiles_per_chunk, tile, n, addr[:half], addr[half:], True, bounds,
                    ptr, srcs, dsts, reds, opcode, like, lut)
    else:
        _run_serial(nitems, tiles_per_chunk, tile, n, addr, addr, False, bounds, ptr, srcs,
                    dsts, reds, opcode, like, lut)
    return 0


def run_plain_in_place(table: StepTable, buffers: list[np.ndarray] | tuple[np.ndarray, ...],
                       op: str, tuning: KernelTuning,
                       out: list[np.ndarray] | tuple[np.ndarray, ...] | None = None) -> bool:
    """Run ``table`` on ``buffers`` if they are plain (module docstring): in place, or
    with ``out`` (one plain array per rank, of the buffers' dtype and shape, none
    overlapping another or a buffer) out of place, leaving ``buffers`` untouched.

    Returns True when it ran; False when the caller must check and run them the general
    way (nothing was touched). ``buffers`` (and ``out``) are non-empty lists or tuples
    with one entry per rank of ``table``; ``op`` is a supported op.
    """
    first = buffers[0]
    if LAYOUT_WORDS is None or type(first) is not np.ndarray:
        return False
    like = _LIKE.get(first.dtype)
    n = first.size
    if like is None or n == 0 or len(table) == 0:
        return False  # unsupported dtype, or nothing to run: the full checks decide
    copy_in = out is not None
    arrays = buffers if out is None else (*buffers, *out)
    nitems, tiles_per_chunk, tile, bounds, parallel = launch_geometry(
        table, n, like.itemsize, copy_in, tuning)
    ptr, srcs, dsts, reds = table.by_chunk
    if parallel and numba.get_num_threads() > 1:  # large: launch from Python
        addr = plain_addresses(arrays, like.itemsize)
        if addr is None:
            return False
        half = len(buffers)
        _run_parallel(nitems, tiles_per_chunk, tile, n, addr[:half], addr[-half:], copy_in,
                      bounds, ptr, srcs, dsts, reds, OPCODES[op], like, _HALF_TO_FLOAT)
        return True
    ids = np.fromiter(map(id, arrays), np.int64, len(arrays))
    return _checked_run(ids, LAYOUT_WORDS, copy_in, nitems, tiles_per_chunk, tile, n, bounds,
                        ptr, srcs, dsts, reds, OPCODES[op], like, _HALF_TO_FLOAT) == 0
