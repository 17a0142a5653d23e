"""Raw buffer addresses, and a fast check of plain rank arrays, as cheap as Python allows.

The executors pass rank buffers to compiled code as addresses, and the argument checks
compare address ranges to refuse overlapping rank buffers. ``ndarray.ctypes.data`` and
``__array_interface__`` cost microseconds each; mapping a ctypes object onto the buffer
costs a fraction of that, which matters for small-message latency.

**Plain rank arrays in one compiled call.** For the common case (exact ``np.ndarray``
objects of one dtype and shape, C-contiguous, writeable, disjoint) even that is too
slow: reading ``.flags``, ``.shape`` and an address per rank costs ~1 µs a rank.
:func:`plain_status` instead hands the ranks' object addresses (``id``) to a Numba
function that reads NumPy's array struct directly (``PyArrayObject_fields`` in
``numpy/ndarraytypes.h``, a public, stable C layout: ``data``, ``nd``,
``dimensions``, ``descr``, ``flags`` after the object header). The offsets are not
assumed: :data:`LAYOUT` is found once at import by probing arrays of several shapes,
dtypes and flags against NumPy's Python API, and is ``None`` (the fast check then
always answers "not plain", so callers take the full checks) wherever the probe does
not match exactly, e.g. on a Python build with a different object header. The fast
check only ever says "plain, here are the addresses" or "check properly"; every error
message still comes from :mod:`ringpipe.collectives.checks`.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np
from numba import carray, njit, types
from numba.extending import intrinsic

#: NumPy's flag bits (``NPY_ARRAY_C_CONTIGUOUS``, ``NPY_ARRAY_WRITEABLE``).
C_CONTIGUOUS, WRITEABLE = 0x0001, 0x0400
_WORD = np.zeros(1, dtype=np.int64)
_WORD.flags.writeable = False


def data_address(buffer: np.ndarray) -> int:
    """Address of an array's first element (its base address when it is empty)."""
    if buffer.flags.writeable and buffer.nbytes:
        return ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    return buffer.__array_interface__["data"][0]  # read-only buffers refuse from_buffer


def addresses(buffers: list[np.ndarray]) -> np.ndarray:
    """uint64 array of the data addresses of non-empty ``buffers``."""
    return np.array([data_address(b) for b in buffers], dtype=np.uint64)


@intrinsic
def address_to_pointer(typingctx: object, address: types.Type,
                       like: types.Type) -> tuple[types.Type, object] | None:
    """Reinterpret an integer address as a pointer to ``like``'s element type."""
    if not isinstance(address, types.Integer) or not isinstance(like, types.Array):
        return None
    ptr_type = types.CPointer(like.dtype)

    def codegen(context: object, builder: object, signature: object, args: tuple) -> object:
        return builder.inttoptr(args[0], context.get_value_type(ptr_type))

    return ptr_type(address, like), codegen


@dataclass(frozen=True)
class ArrayLayout:
    """Byte offsets of the ``PyArrayObject`` fields the fast check reads."""

    type_offset: int = 8
    data_offset: int = 16
    nd_offset: int = 24
    dims_offset: int = 32
    descr_offset: int = 56
    flags_offset: int = 64
    ndarray_type: int = id(np.ndarray)

    def words(self) -> np.ndarray:
        """The layout as the int64 array the compiled check takes."""
        out = np.array([self.type_offset, self.data_offset, self.nd_offset, self.dims_offset,
                        self.descr_offset, self.flags_offset, self.ndarray_type], np.int64)
        out.flags.writeable = False
        return out


def _read(address: int, ctype: type = ctypes.c_int64) -> int:
    return ctype.from_address(address).value


def _probe_layout() -> ArrayLayout | None:
    """The struct layout, if it reads back exactly what NumPy's API says; else None."""
    layout = ArrayLayout()
    base = np.zeros((3, 5, 7), dtype=np.float32)
    probes = [base, base[:, ::2], base[0], np.ones(4, np.int64), np.ones((), np.float64),
              np.zeros((2, 3), np.float16, order="F")]
    frozen = np.arange(6, dtype=np.int32)
    frozen.flags.writeable = False
    probes.append(frozen)
    try:
        for a in probes:
            obj = id(a)
            flags = _read(obj + layout.flags_offset, ctypes.c_int32)
            nd = _read(obj + layout.nd_offset, ctypes.c_int32)
            dims = _read(obj + layout.dims_offset)
            ok = (_read(obj + layout.type_offset) == layout.ndarray_type
                  and _read(obj + layout.data_offset) == a.__array_interface__["data"][0]
                  and nd == a.ndim
                  and all(_read(dims + 8 * i) == a.shape[i] for i in range(nd))
                  and _read(obj + layout.descr_offset) == id(a.dtype)
                  and bool(flags & C_CONTIGUOUS) == a.flags.c_contiguous
                  and bool(flags & WRITEABLE) == a.flags.writeable)
            if not ok:
                return None
    except (ValueError, OverflowError, TypeError):  # pragma: no cover - exotic runtimes
        return None
    return layout


#: The probed layout (None: the fast check is off on this interpreter).
LAYOUT = _probe_layout()
#: :data:`LAYOUT` as the int64 words :func:`plain_status` takes (None: fast check off).
LAYOUT_WORDS = None if LAYOUT is None else LAYOUT.words()


@njit(cache=True, inline="always")
def _word(address: int, offset: int, like: np.ndarray) -> int:
    return carray(address_to_pointer(address + offset, like), (1,))[0]


@njit(cache=True)
def plain_status(ids: np.ndarray, layout: np.ndarray, itemsize: int,
                  out_addr: np.ndarray) -> int:
    """0 when every object of ``ids`` is a plain ndarray of rank 0's descr and shape,
    C-contiguous and writeable, and their data ranges are pairwise disjoint (then
    ``out_addr`` (uint64) holds their data addresses); 1 otherwise. Reads only."""
    type_off, data_off, nd_off, dims_off, descr_off, flags_off, nd_type = (
        layout[0], layout[1], layout[2], layout[3], layout[4], layout[5], layout[6])
    first = ids[0]
    if _word(first, type_off, _WORD) != nd_type:
        return 1  # only an exact ndarray's fields are read
    descr = _word(first, descr_off, _WORD)
    nd = _word(first, nd_off, _WORD) & 0xFFFFFFFF
    dims0 = _word(first, dims_off, _WORD)
    count = 1
    for i in range(nd):
        count *= _word(dims0, 8 * i, _WORD)
    for r in range(ids.size):
        obj = ids[r]
        if _word(obj, type_off, _WORD) != nd_type or _word(obj, descr_off, _WORD) != descr:
            return 1
        if (_word(obj, nd_off, _WORD) & 0xFFFFFFFF) != nd:
            return 1
        flags = _word(obj, flags_off, _WORD) & 0xFFFFFFFF
        if (flags & C_CONTIGUOUS) == 0 or (flags & WRITEABLE) == 0:
            return 1
        dims = _word(obj, dims_off, _WORD)
        for i in range(nd):
            if _word(dims, 8 * i, _WORD) != _word(dims0, 8 * i, _WORD):
                return 1
        out_addr[r] = _word(obj, data_off, _WORD)
    nbytes = count * itemsize
    if nbytes > 0 and ids.size > 1:
        starts = np.sort(out_addr)
        for r in range(1, starts.size):
            if starts[r] - starts[r - 1] < nbytes:
                return 1
    return 0


def plain_addresses(buffers: list[np.ndarray] | tuple[np.ndarray, ...],
                    itemsize: int) -> np.ndarray | None:
    """The data addresses of ``buffers`` if they are plain, writeable, C-contiguous
    ndarrays of one dtype and shape that do not overlap; else None (check properly).

    ``itemsize`` is ``buffers[0].itemsize``; the caller has checked that ``buffers``
    is a non-empty list or tuple (module docstring).
    """
    if LAYOUT_WORDS is None:
        return None
    ids = np.fromiter(map(id, buffers), np.int64, len(buffers))
    out = np.empty(len(buffers), np.uint64)
    if plain_status(ids, LAYOUT_WORDS, itemsize, out):
        return None
    return out
