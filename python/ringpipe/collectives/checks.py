"""Argument checks for the collectives, run before any buffer is touched.

Every error is a TypeError (wrong kind of thing) or ValueError (right kind, wrong
value) whose message names the collective, the rank, the argument and the problem,
e.g. ``all_reduce: rank 3: buffers[3] is not C-contiguous``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ringpipe.kernels.ops import SUPPORTED_OPS as SUPPORTED_OPS  # the one op table

#: dtypes every executor supports.
SUPPORTED_DTYPES = tuple(np.dtype(t) for t in
                         (np.float16, np.float32, np.float64, np.int32, np.int64))
#: Host backends: every API that takes a backend (collectives, plans, CLI) offers these.
BACKENDS = ("numpy", "numba")
#: The collectives also run on the GPU (CuPy arrays; NumPy arrays under Numba's CUDA
#: simulator): see :mod:`ringpipe.kernels.cuda.backend`.
COLLECTIVE_BACKENDS = (*BACKENDS, "cupy")


def _fail(kind: type[Exception], where: str, msg: str, rank: int | None = None) -> Exception:
    prefix = f"{where}: rank {rank}: " if rank is not None else f"{where}: "
    return kind(prefix + msg)


def check_choice(where: str, name: str, value: object, allowed: Sequence[str]) -> None:
    """``value`` must be one of ``allowed`` (e.g. an op, algorithm or backend)."""
    if not isinstance(value, str):
        raise _fail(TypeError, where, f"{name} must be a str, got {type(value).__name__}")
    if value not in allowed:
        raise _fail(ValueError, where,
                    f"unknown {name} {value!r}; choose one of {', '.join(map(repr, allowed))}")


def check_root(where: str, root: object, nranks: int) -> int:
    """``root`` must be an int in ``[0, nranks)``."""
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)):
        raise _fail(TypeError, where, f"root must be an int, got {type(root).__name__}")
    if not 0 <= int(root) < nranks:
        raise _fail(ValueError, where, f"root {int(root)} out of range for {nranks} ranks "
                                       f"(valid: 0..{nranks - 1})")
    return int(root)


def check_rank_arrays(where: str, name: str, arrays: object, *, nranks: int | None = None,
                      writeable: bool, same_shape: bool = True,
                      array_type: type = np.ndarray) -> list[np.ndarray]:
    """A non-empty list/tuple of C-contiguous arrays of one supported dtype (and shape).

    Returns the arrays as a list. ``nranks`` fixes the expected length; ``array_type``
    is the array class (``cupy.ndarray`` for the GPU backend; CuPy arrays are always
    writeable).
    """
    if array_type is np.ndarray and _plain_arrays_ok(arrays, nranks, writeable, same_shape):
        return list(arrays)  # the common case, checked in one tight pass
    kind = f"{array_type.__module__.split('.')[0]}.{array_type.__name__}"
    if not isinstance(arrays, (list, tuple)):
        raise _fail(TypeError, where, f"{name} must be a list with one {kind.split('.')[0]} "
                                      f"array per rank, got {type(arrays).__name__}")
    if len(arrays) == 0:
        raise _fail(ValueError, where, f"{name} is empty: need one array per rank")
    if nranks is not None and len(arrays) != nranks:
        raise _fail(ValueError, where, f"{name} has {len(arrays)} arrays for {nranks} ranks")
    first = arrays[0]
    for r, a in enumerate(arrays):
        if not isinstance(a, array_type):
            raise _fail(TypeError, where, f"{name}[{r}] is a {type(a).__name__}, "
                                          f"expected {kind}", r)
        if isinstance(a, np.matrix):
            raise _fail(TypeError, where, f"{name}[{r}] is an np.matrix, which stays 2-D "
                                          "when flattened; pass np.asarray(...)", r)
        if isinstance(a, np.ma.MaskedArray):
            raise _fail(TypeError, where, f"{name}[{r}] is a masked array; collectives ignore "
                                          "masks, pass np.ma.getdata(...) or a filled array", r)
        if a.dtype not in SUPPORTED_DTYPES:
            raise _fail(TypeError, where, f"{name}[{r}] has unsupported dtype {a.dtype}; "
                        f"supported: {', '.join(str(d) for d in SUPPORTED_DTYPES)}", r)
        if a.dtype != first.dtype:
            raise _fail(TypeError, where, f"{name}[{r}] has dtype {a.dtype} but rank 0 has "
                                          f"{first.dtype}", r)
        if same_shape and a.shape != first.shape:
            raise _fail(ValueError, where, f"{name}[{r}] has shape {a.shape} but rank 0 has "
                                           f"{first.shape}", r)
        if not a.flags.c_contiguous:
            raise _fail(ValueError, where, f"{name}[{r}] is not C-contiguous; pass "
                                           "np.ascontiguousarray(...)", r)
        if writeable and not getattr(a.flags, "writeable", True):
            raise _fail(ValueError, where, f"{name}[{r}] is read-only", r)
    return list(arrays)


def _plain_arrays_ok(arrays: object, nranks: int | None, writeable: bool,
                     same_shape: bool) -> bool:
    """True when every check of :func:`check_rank_arrays` passes for plain ndarrays.

    Small-message latency is dominated by these checks, so the usual case (exact
    ``np.ndarray`` of one supported dtype and shape) is decided here with as few
    attribute reads as possible; anything else (including every failure) takes the
    rank-by-rank path, which finds and names the problem.
    """
    if type(arrays) not in (list, tuple) or not arrays:
        return False
    if nranks is not None and len(arrays) != nranks:
        return False
    first = arrays[0]
    if type(first) is not np.ndarray:
        return False
    dtype, shape = first.dtype, first.shape
    if dtype not in SUPPORTED_DTYPES:
        return False
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype != dtype or (same_shape and a.shape != shape):
            return False
        flags = a.flags
        if not flags.c_contiguous or (writeable and not flags.writeable):
            return False
    return True


def check_no_overlap(where: str, groups: Sequence[tuple[str, list[np.ndarray], np.ndarray]],
                     allow_same_rank: bool = False) -> None:
    """No two rank buffers share memory (a shared buffer would corrupt the result).

    ``groups`` are (argument name, arrays, their data addresses). With
    ``allow_same_rank``, ``out[r]`` may be exactly ``buffers[r]`` (in place), but not
    partially overlap it.
    """
    if len(groups) == 1 and _equal_spans_disjoint(*groups[0]):
        return  # the in-place common case; otherwise the general sweep names the overlap
    spans = []
    for name, arrays, starts in groups:
        for r, a in enumerate(arrays):
            if a.nbytes:
                start = int(starts[r])
                spans.append((start, start + a.nbytes, name, r))
    spans.sort()
    widest = None  # the span reaching furthest right so far
    for span in spans:
        if widest is not None and span[0] < widest[1]:
            s0, e0, n0, r0 = widest
            s1, e1, n1, r1 = span
            if not (allow_same_rank and r0 == r1 and (s0, e0) == (s1, e1)):
                raise _fail(ValueError, where, f"{n1}[{r1}] overlaps {n0}[{r0}] in memory; "
                                               "every rank needs its own buffer", r1)
        if widest is None or span[1] > widest[1]:
            widest = span


def _equal_spans_disjoint(name: str, arrays: list[np.ndarray], starts: np.ndarray) -> bool:
    """True when buffers of one byte size start at least that far apart (no overlap)."""
    nbytes = arrays[0].nbytes
    for a in arrays:
        if a.nbytes != nbytes:
            return False
    if nbytes == 0:
        return True
    ordered = sorted(starts.tolist())
    previous = ordered[0]
    for start in ordered[1:]:
        if start - previous < nbytes:
            return False
        previous = start
    return True
