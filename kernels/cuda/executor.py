"""The GPU kernel: a tile-fused numba.cuda executor for step tables.

It is the CPU kernel (:mod:`ringpipe.kernels.numba_exec`) mapped onto CUDA's grid. The
table is regrouped per chunk (:attr:`StepTable.by_chunk`; transfers on different chunks
touch disjoint elements and commute) and each chunk is cut into tiles of
``tile_elems`` elements. A *work item* is one (chunk, tile) pair; block b takes items
b, b + gridDim, ... (a grid-stride loop, so any size fits a capped grid). Within an item
the block's threads stride over the tile's elements, ``elems_per_thread`` at a time, and
each thread carries its elements through *all* of the chunk's transfers in table order:

    load   v[r] = in_r[i]            for every rank r whose chunk-c value is read first
    apply  v[d] = op(v[d], v[s])     (reduce)   or   v[d] = v[s]   (copy), in table order
    store  out_r[i] = v[r]           for every rank r that the chunk's transfers write

so element i sees exactly the reduction sequence of the NumPy reference executor
(:func:`ringpipe.kernels.numpy_exec.run_table_numpy`): results are bitwise equal. The
values live in a per-thread local array while the chunk's steps run, so global memory
is touched once per input and once per output: 2·N·S bytes for an all-reduce of S
bytes on N ranks, the same lower bound the CPU kernel meets. NCCL's ring kernels
(``src/device/all_reduce.h``: ``runRing``) run the same per-chunk send / recvReduceSend /
recvCopySend sequence across GPUs; with all ranks in one GPU's memory the sends become
register moves and the fused sequence costs one pass over HBM.

Which ranks to load and store per chunk is computed once per table on the host
(:func:`_rank_masks`). Out of place (``inputs`` given), every rank is loaded from its
input and stored to its output, fusing the copy into the same pass.

Rank buffers reach the kernel as a tuple of N one-dimensional arrays (the tuple is
indexed with a rank number in device code): real CuPy arrays are wrapped zero-copy
through ``__cuda_array_interface__`` by the caller (:mod:`ringpipe.kernels.cuda.backend`),
while under Numba's CUDA simulator they are the NumPy arrays themselves. One kernel is
compiled per (N, dtype, elems_per_thread). The tuple costs 56 bytes of kernel parameters
per array, which keeps N ≤ :data:`MAX_RANKS` within CUDA's 4 KiB parameter limit.

float16 runs as ``uint16`` bit patterns through :mod:`ringpipe.kernels.cuda.half`, which
emulates NumPy's widen-to-float32, add, round-to-nearest-even arithmetic in integers.

Bitwise equality covers every value NumPy fixes on x86-64, signed zeros of max/min and
float16 NaN payloads included. The one thing left to the hardware is the sign and
payload of a NaN produced by a float32/float64 sum (IEEE 754 leaves them open; GPUs
return a canonical NaN): such elements are NaN, as in the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import numba
import numpy as np
from numba import cuda

from ringpipe.kernels.cuda.half import half_ops
from ringpipe.kernels.cuda.tuning import DEFAULT_CUDA_TUNING, MAX_RANKS, CudaTuning
from ringpipe.kernels.ops import OPCODES
from ringpipe.kernels.steps import StepTable

__all__ = ["MAX_RANKS", "OPCODES", "KernelIO", "LaunchShape", "launch_shape",
           "run_table_cuda"]


_HALF = half_ops(cuda.jit(device=True, inline=True))
_half_add = _HALF.add
_half_widen = _HALF.widen


@cuda.jit(device=True, inline=True)
def _combine_native(a, b, opcode):
    """``np.add`` / ``np.maximum`` / ``np.minimum`` on one element; ``a`` is the receiver.

    max/min return a NaN operand (a's if both are), else the larger/smaller, and ``b`` on
    a tie: NumPy's SIMD loops for float32/float64 on x86-64 (``maxps`` order), which
    shows only on signed zeros, ``maximum(0.0, -0.0) == -0.0``.
    """
    if opcode == 0:
        return a + b
    if opcode == 1:
        return a if (a > b or a != a) else b
    return a if (a < b or a != a) else b


@cuda.jit(device=True, inline=True)
def _combine_half(a, b, opcode):
    """The same on float16 bit patterns; max/min copy the winner's bits, as NumPy does.

    NumPy's scalar float16 loop keeps ``a`` on a tie (``a >= b or isnan(a)``).
    """
    if opcode == 0:
        return _half_add(a, b)
    x = _half_widen(a)
    y = _half_widen(b)
    if opcode == 1:
        return a if (x >= y or x != x) else b
    return a if (x <= y or x != x) else b


class LaunchShape(NamedTuple):
    """How one call is cut: ``items = nchunks · tiles_per_chunk`` over ``blocks`` blocks."""

    tile: int
    tiles_per_chunk: int
    items: int
    blocks: int
    threads: int


def launch_shape(count: int, nchunks: int, tuning: CudaTuning) -> LaunchShape:
    """The grid for ``count`` elements per rank cut into ``nchunks`` chunks."""
    largest_chunk = -(-count // nchunks)
    tiles_per_chunk = max(1, -(-largest_chunk // tuning.tile_elems))
    items = nchunks * tiles_per_chunk
    return LaunchShape(tuning.tile_elems, tiles_per_chunk, items,
                       min(items, tuning.max_blocks), tuning.threads_per_block)


@lru_cache(maxsize=256)
def _rank_masks(table: StepTable) -> tuple[np.ndarray, np.ndarray]:
    """Per chunk, which ranks the kernel must load and which it must store.

    ``load[c, r]``: rank r's chunk c is read (as a source, or as the receiver of a
    reduction) before any copy overwrites it. ``store[c, r]``: some transfer writes it.
    Tables are cached by their generators, so this runs once per table.
    """
    n, ptr = table.nranks, table.by_chunk[0]
    srcs, dsts, reds = table.by_chunk[1:]
    load = np.zeros((table.nchunks, n), dtype=np.int64)
    store = np.zeros((table.nchunks, n), dtype=np.int64)
    for c in range(table.nchunks):
        defined = set()
        for t in range(ptr[c], ptr[c + 1]):
            s, d = int(srcs[t]), int(dsts[t])
            for r in (s, d) if reds[t] else (s,):
                if r not in defined:
                    load[c, r] = 1
                    defined.add(r)
            defined.add(d)
            store[c, d] = 1
    return load, store


@lru_cache(maxsize=256)
def _table_meta(table: StepTable) -> np.ndarray:
    """``[ptr (C+1) | src (T) | dst (T) | reduce (T) | load (C·N) | store (C·N)]`` as int64."""
    ptr, srcs, dsts, reds = table.by_chunk
    load, store = _rank_masks(table)
    meta = np.concatenate([ptr, srcs, dsts, reds.astype(np.int64), load.ravel(),
                           store.ravel()]).astype(np.int64)
    meta.flags.writeable = False
    return meta


@lru_cache(maxsize=64)
def _kernel(nranks: int, dtype: str, per_thread: int) -> Callable:
    """Compile (lazily, on first launch) the kernel for N ranks of ``dtype``."""
    item_type = numba.from_dtype(np.dtype(dtype))
    combine = _combine_half if np.dtype(dtype) == np.uint16 else _combine_native
    nr, k_max = nranks, per_thread

    def step_table_kernel(ins, outs, meta, count, nchunks, ntransfers,
                          tiles_per_chunk, tile, opcode, copy_in):  # noqa: ANN001
        # Unpack the table's metadata (layout: _table_meta's). Chunk c of the count
        # elements starts at c·per_chunk + min(c, extra), as chunk_bounds defines it.
        per_chunk = count // nchunks
        extra = count % nchunks
        o = 0
        ptr = meta[o:o + nchunks + 1]
        o += nchunks + 1
        srcs = meta[o:o + ntransfers]
        dsts = meta[o + ntransfers:o + 2 * ntransfers]
        reds = meta[o + 2 * ntransfers:o + 3 * ntransfers]
        o += 3 * ntransfers
        loads = meta[o:o + nchunks * nr]
        stores = meta[o + nchunks * nr:o + 2 * nchunks * nr]

        vals = cuda.local.array((k_max, nr), item_type)
        tid = cuda.threadIdx.x
        nthreads = cuda.blockDim.x
        w = cuda.blockIdx.x
        while w < nchunks * tiles_per_chunk:  # grid-stride loop over (chunk, tile) items
            c = w // tiles_per_chunk
            chunk_lo = c * per_chunk + min(c, extra)
            chunk_hi = chunk_lo + per_chunk + (1 if c < extra else 0)
            lo = chunk_lo + (w % tiles_per_chunk) * tile
            hi = min(lo + tile, chunk_hi)
            load_mask = 0
            store_mask = 0
            for r in range(nr):
                if copy_in or loads[c * nr + r] != 0:
                    load_mask |= 1 << r
                if copy_in or stores[c * nr + r] != 0:
                    store_mask |= 1 << r
            base = lo
            while base < hi:
                # This thread's elements: base + tid + k·nthreads for k < nk.
                nk = 0
                if hi > base + tid:
                    nk = min(k_max, (hi - base - tid + nthreads - 1) // nthreads)
                for k in range(nk):
                    i = base + tid + k * nthreads
                    for r in range(nr):
                        if load_mask & (1 << r):
                            vals[k, r] = ins[r][i]
                for t in range(ptr[c], ptr[c + 1]):
                    s = srcs[t]
                    d = dsts[t]
                    if reds[t] != 0:
                        for k in range(nk):
                            vals[k, d] = combine(vals[k, d], vals[k, s], opcode)
                    else:
                        for k in range(nk):
                            vals[k, d] = vals[k, s]
                for k in range(nk):
                    i = base + tid + k * nthreads
                    for r in range(nr):
                        if store_mask & (1 << r):
                            outs[r][i] = vals[k, r]
                base += nthreads * k_max
            w += cuda.gridDim.x

    return cuda.jit(step_table_kernel)


class KernelIO(NamedTuple):
    """How arrays reach the kernel.

    ``wrap`` turns a flat rank array into a kernel argument, ``table_meta`` gives a
    table's metadata (:func:`table_meta`) on the device, and ``stream`` is the stream to
    launch on. Under the simulator all three are trivial (:data:`SIMULATOR_IO`); for CuPy
    see :func:`ringpipe.kernels.cuda.backend._cupy_io`, which uploads each table's
    metadata once per device, so a launch copies nothing from the host (a pageable
    host-to-device copy would wait for the stream to drain).
    """

    wrap: Callable[[Any], Any]
    table_meta: Callable[[StepTable], Any]
    stream: Any


def _identity(a: Any) -> Any:  # noqa: ANN401 - arrays of either library
    return a


def table_meta(table: StepTable) -> np.ndarray:
    """The kernel's view of ``table`` (read-only, cached): see :func:`_table_meta`."""
    return _table_meta(table)


def _simulator_table_meta(table: StepTable) -> np.ndarray:
    # The simulator copies NumPy kernel arguments back after a launch: pass a copy.
    return _table_meta(table).copy()


SIMULATOR_IO = KernelIO(_identity, _simulator_table_meta, 0)


def _kernel_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.uint16) if dtype == np.float16 else dtype


def run_table_cuda(table: StepTable, buffers: Sequence[Any], op: str,
                   inputs: Sequence[Any] | None = None,
                   tuning: CudaTuning = DEFAULT_CUDA_TUNING,
                   io: KernelIO = SIMULATOR_IO) -> None:
    """Execute ``table`` on ``buffers`` (C-contiguous, equal size and dtype, any shape).

    With ``inputs`` (same layout), the kernel reads every rank from ``inputs`` and
    writes every rank of ``buffers``, fusing the out-of-place copy. Arrays are NumPy
    arrays under the CUDA simulator, CuPy (or any ``__cuda_array_interface__``) arrays
    on a GPU with the matching ``io``. The launch is asynchronous on ``io.stream``.
    Arguments are assumed checked by the caller (:mod:`ringpipe.collectives.api`).
    """
    n = len(buffers)
    if n > MAX_RANKS:
        raise ValueError(f"the CUDA kernel takes at most {MAX_RANKS} ranks, got {n}")
    count = int(buffers[0].size)
    copy_in = inputs is not None
    if count == 0 or (len(table) == 0 and not copy_in):
        return
    kdtype = _kernel_dtype(np.dtype(buffers[0].dtype))
    outs = tuple(io.wrap(b.reshape(-1).view(kdtype)) for b in buffers)
    ins = outs if inputs is None else tuple(
        io.wrap(a.reshape(-1).view(kdtype)) for a in inputs)
    shape = launch_shape(count, table.nchunks, tuning)
    kernel = _kernel(n, kdtype.str, tuning.elems_per_thread)
    kernel[shape.blocks, shape.threads, io.stream](
        ins, outs, io.table_meta(table), count, table.nchunks, len(table),
        shape.tiles_per_chunk, shape.tile, OPCODES[op], copy_in)
