"""The CPU kernel: a tile-fused, parallel Numba executor for step tables.

A step-by-step executor streams every rank's buffer through main memory once per step,
2(N-1) times for a ring all-reduce. This one regroups the table per chunk
(:attr:`StepTable.by_chunk`; transfers on different chunks touch disjoint elements and
commute) and cuts each chunk into cache-sized tiles. A work item is one (chunk, tile)
pair: it runs *all* of that chunk's transfers, in table order, on the tile's element
range, while the N ranks' tiles stay in cache. Each element therefore sees exactly the
reduction sequence of :func:`ringpipe.kernels.numpy_exec.run_table_numpy` (bitwise equal
results) while main memory is touched about once: read each input, write each output,
i.e. the 2·N·S-byte lower bound. Work items are independent and run under ``prange``.

Rank buffers are passed as an array of addresses and re-viewed inside the kernel with
``numba.carray``, so one compiled kernel per dtype serves every rank count.

float16 buffers run as ``uint16`` bit patterns through :mod:`ringpipe.kernels.half`,
which reproduces NumPy's widen-to-float32, add, round-to-nearest-even arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np
from numba import carray, njit, prange, types
from numba.extending import overload

from ringpipe.kernels.half import half_sum_bits, half_to_float_table
from ringpipe.kernels.memory import address_to_pointer, addresses
from ringpipe.kernels.ops import OPCODES
from ringpipe.kernels.steps import StepTable, chunk_bounds
from ringpipe.validation import check_int


@dataclass(frozen=True)
class KernelTuning:
    """Tuning knobs of the Numba executor.

    Attributes:
        tile_bytes: bytes of all ranks' tiles that one work item keeps in cache. The
            default, 256 KiB, is half a core's L2 on the development machine (AMD EPYC,
            512 KiB L2 per core), leaving room for the stack and the other hyperthread.
            Measured there (8 ranks, ring / tree, warm back-to-back calls), 256 KiB
            against the former 1 MiB: 1 MiB per rank 0.194 / 0.198 ms against 0.209 /
            0.217 ms; 4 MiB 1.37 / 1.39 ms against 1.76 / 1.65 ms; 16 and 64 MiB equal
            within the run-to-run noise (5%); 64 KiB tiles are no better at 1 MiB
            and worse from 16 MiB on.
        parallel_min_bytes: below this many bytes in total (all ranks), run on one thread;
            waking the thread pool costs more than it saves for small messages. Above it
            the launch uses Numba's pool unless the calling thread's pool is one thread
            (``numba.set_num_threads(1)``, e.g. under a
            :class:`~ringpipe.kernels.threads.ThreadPolicy` of one thread), where the
            serial kernel runs instead of a one-thread parallel region.
    """

    tile_bytes: int = 256 << 10
    parallel_min_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        # ints only (a float or NaN would reach the kernel's index arithmetic), and
        # bounded so that the tile fits the kernel's int64 element counts
        check_int("KernelTuning.tile_bytes", self.tile_bytes, 64, 1 << 40)
        check_int("KernelTuning.parallel_min_bytes", self.parallel_min_bytes, 0, 1 << 62)


DEFAULT_TUNING = KernelTuning()

_HALF_TO_FLOAT = half_to_float_table()
_HALF_TO_FLOAT.flags.writeable = False


def _apply(d, s, reduce, opcode, lut):
    """``d[:] = op(d, s)`` (a reduction) or ``d[:] = s`` (a copy); dispatched on dtype."""
    raise TypeError("_apply runs only inside Numba-compiled kernels")  # pragma: no cover


@overload(_apply, jit_options={"cache": True})
def _apply_overload(d, s, reduce, opcode, lut):
    if d.dtype == types.uint16:  # float16 bit patterns

        def apply_half(d, s, reduce, opcode, lut):
            if not reduce:
                for i in range(d.size):
                    d[i] = s[i]
                return
            for i in range(d.size):
                a = lut[d[i]]
                b = lut[s[i]]
                if opcode == 0:
                    d[i] = half_sum_bits(d[i], s[i], a, b)
                elif opcode == 1:  # NumPy's half maximum keeps the first operand on ties
                    if not (a >= b or a != a):
                        d[i] = s[i]
                elif not (a <= b or a != a):
                    d[i] = s[i]

        return apply_half

    def apply_native(d, s, reduce, opcode, lut):
        # Views start at the tile: indices from 0 are provably in range, so LLVM vectorizes.
        if not reduce:
            for i in range(d.size):
                d[i] = s[i]
        elif opcode == 0:
            for i in range(d.size):
                d[i] = d[i] + s[i]
        elif opcode == 1:
            # np.maximum(d, s): d if d is NaN or d > s, else s (so s wins ties: max(0, -0)
            # is -0, and a NaN in either operand propagates with its payload).
            for i in range(d.size):
                a = d[i]
                b = s[i]
                if not (a > b or a != a):
                    d[i] = b
        else:  # np.minimum(d, s): d if d is NaN or d < s, else s
            for i in range(d.size):
                a = d[i]
                b = s[i]
                if not (a < b or a != a):
                    d[i] = b

    return apply_native


@njit(cache=True, inline="always")
def _tile_view(addresses, r, lo, hi, like):
    """Rank r's elements [lo, hi) as an array view, straight from its address."""
    return carray(address_to_pointer(addresses[r] + lo * like.itemsize, like), (hi - lo,))


@njit(cache=True)
def _run_item(w, tiles_per_chunk, tile, n, in_addr, out_addr, copy_in, bounds,
              ptr, srcs, dsts, reds, opcode, like, lut):
    c = w // tiles_per_chunk
    lo = bounds[c] + (w % tiles_per_chunk) * tile
    hi = min(lo + tile, bounds[c + 1])
    if lo >= hi:
        return
    if copy_in:
        for r in range(out_addr.size):
            dst = _tile_view(out_addr, r, lo, hi, like)
            src = _tile_view(in_addr, r, lo, hi, like)
            for i in range(dst.size):
                dst[i] = src[i]
    for t in range(ptr[c], ptr[c + 1]):
        _apply(_tile_view(out_addr, dsts[t], lo, hi, like),
               _tile_view(out_addr, srcs[t], lo, hi, like), reds[t] != 0, opcode, lut)


@njit(cache=True, parallel=True)
def _run_parallel(nitems, tiles_per_chunk, tile, n, in_addr, out_addr, copy_in, bounds,
                  ptr, srcs, dsts, reds, opcode, like, lut):
    for w in prange(nitems):
        _run_item(w, tiles_per_chunk, tile, n, in_addr, out_addr, copy_in, bounds, ptr, srcs,
                  dsts, reds, opcode, like, lut)


@njit(cache=True)
def _run_serial(nitems, tiles_per_chunk, tile, n, in_addr, out_addr, copy_in, bounds,
                ptr, srcs, dsts, reds, opcode, like, lut):
    for w in range(nitems):
        _run_item(w, tiles_per_chunk, tile, n, in_addr, out_addr, copy_in, bounds, ptr, srcs,
                  dsts, reds, opcode, like, lut)


@lru_cache(maxsize=256)
def _bounds(count: int, nchunks: int) -> np.ndarray:
    b = chunk_bounds(count, nchunks)
    b.flags.writeable = False
    return b


#: dtype -> a one-element array of the type the kernel runs on (float16 as uint16).
_LIKE = {np.dtype(t): np.zeros(1, dtype=t) for t in
         (np.float32, np.float64, np.int32, np.int64, np.uint16)}
_LIKE[np.dtype(np.float16)] = _LIKE[np.dtype(np.uint16)]  # halves run as bit patterns


def prepare_table_numba(table: StepTable, buffers: list[np.ndarray], op: str,
                        inputs: list[np.ndarray] | None = None,
                        tuning: KernelTuning = DEFAULT_TUNING, *,
                        buffer_addresses: np.ndarray | None = None,
                        input_addresses: np.ndarray | None = None) -> Callable[[], None]:
    """Bind ``table`` to ``buffers`` once; the returned call runs the kernel on them.

    Everything but the launch (addresses, tiling, the per-chunk program) is computed
    here, so a persistent collective pays only the kernel call each time. The buffers
    must stay alive and in place while the returned callable is used (it holds them).
    """
    launch = _launch(table, buffers, op, inputs, tuning, buffer_addresses, input_addresses)
    if launch is None:
        return _nothing
    return BoundKernel(launch[0], launch[1], (tuple(buffers), tuple(inputs or ())))


@lru_cache(maxsize=256)
def launch_geometry(table: StepTable, count: int, itemsize: int, copy_in: bool,
                    tuning: KernelTuning) -> tuple[int, int, int, np.ndarray, bool]:
    """How a launch on ``count`` elements per rank is cut: (work items, tiles per chunk,
    tile elements, chunk bounds, whether to run in parallel).

    A tile is ``tuning.tile_bytes`` over all ranks' (and inputs') tiles, in multiples of
    16 elements. A collective of fewer than ``tuning.parallel_min_bytes`` in all ranks'
    buffers runs serially, in place or out of place alike: the out-of-place copy is
    fused into the same pass and does not make a small collective worth the thread
    pool (counting the inputs too once sent a 64 KiB × 8-rank out-of-place all-reduce to
    the pool at half the in-place threshold, 6-15 ms on a busy machine against 20 µs).
    """
    width = itemsize * table.nranks * (2 if copy_in else 1)
    tile = max(64, (tuning.tile_bytes // width) // 16 * 16)
    bounds = _bounds(count, table.nchunks)
    tiles_per_chunk = -(-int(bounds[1]) // tile)
    nitems = table.nchunks * tiles_per_chunk
    parallel = count * itemsize * table.nranks >= tuning.parallel_min_bytes and nitems > 1
    return nitems, tiles_per_chunk, tile, bounds, parallel


def _launch(table: StepTable, buffers: list[np.ndarray], op: str,
            inputs: list[np.ndarray] | None, tuning: KernelTuning,
            buffer_addresses: np.ndarray | None,
            input_addresses: np.ndarray | None) -> tuple[Callable[..., None], tuple] | None:
    """(kernel, arguments) of one launch, or None when there is nothing to do."""
    n = buffers[0].size
    copy_in = inputs is not None
    if n == 0 or (len(table) == 0 and not copy_in):
        return None
    dtype = buffers[0].dtype
    nitems, tiles_per_chunk, tile, bounds, parallel = launch_geometry(
        table, n, dtype.itemsize, copy_in, tuning)
    out_addr = addresses(buffers) if buffer_addresses is None else buffer_addresses
    if not copy_in:
        in_addr = out_addr
    else:
        in_addr = addresses(inputs) if input_addresses is None else input_addresses
    ptr, srcs, dsts, reds = table.by_chunk
    run = _run_parallel if parallel and numba.get_num_threads() > 1 else _run_serial
    args = (nitems, tiles_per_chunk, tile, n, in_addr, out_addr, copy_in, bounds, ptr, srcs,
            dsts, reds, OPCODES[op], _LIKE[dtype], _HALF_TO_FLOAT)
    return run, args


@dataclass(frozen=True)
class BoundKernel:
    """A kernel launch with every argument fixed; holds the buffers so they stay alive."""

    kernel: Callable[..., None]
    args: tuple
    buffers: tuple

    def __call__(self) -> None:
        self.kernel(*self.args)


def _nothing() -> None:
    return None


def run_table_numba(table: StepTable, buffers: list[np.ndarray], op: str,
                    inputs: list[np.ndarray] | None = None,
                    tuning: KernelTuning = DEFAULT_TUNING, *,
                    buffer_addresses: np.ndarray | None = None,
                    input_addresses: np.ndarray | None = None) -> None:
    """Execute ``table`` on ``buffers`` (C-contiguous, equal size and dtype, any shape).

    With ``inputs`` (same layout), each work item first copies its tile from ``inputs``
    into ``buffers``, fusing the out-of-place copy into the same pass over memory.
    ``buffer_addresses`` / ``input_addresses`` may pass addresses the caller already
    computed (:func:`ringpipe.kernels.memory.addresses`). Arguments are assumed checked
    by the caller (:mod:`ringpipe.collectives.api`).
    """
    launch = _launch(table, buffers, op, inputs, tuning, buffer_addresses, input_addresses)
    if launch is not None:  # the caller holds the buffers for the duration of the call
        launch[0](*launch[1])
