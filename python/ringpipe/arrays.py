"""Which array module an array belongs to: NumPy on the host, CuPy on a GPU.

The model maths (:mod:`ringpipe.model`) and the in-process plan runtime are written
once against an array module ``xp`` taken from their inputs, the way CuPy's
``cupy.get_array_module`` and the array-API standard's ``__array_namespace__`` work:

* a ``numpy.ndarray`` gives ``numpy``;
* a ``cupy.ndarray`` gives ``cupy`` (found by its class, so CuPy is never imported to
  answer the question for a NumPy array);
* any other array implementing the array-API ``__array_namespace__`` protocol gives its
  own namespace (the tests use this to run the plan runtime on an emulated device that,
  like CuPy, refuses to mix host and device arrays).

Nothing here holds state: the module of an array is a property of the array.
Host copies go through :func:`to_host` (``cupy.asnumpy``), never through an implicit
``numpy.asarray``, which CuPy refuses.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np


def _is_cupy(a: object) -> bool:
    return type(a).__module__.split(".", 1)[0] == "cupy" and "cupy" in sys.modules


def is_array(a: object) -> bool:
    """A NumPy array, a CuPy array, or another array-API array (``__array_namespace__``)."""
    if isinstance(a, np.ndarray):
        return not isinstance(a, np.ma.MaskedArray)
    return _is_cupy(a) or hasattr(type(a), "__array_namespace__")


def array_module(a: Any) -> ModuleType:  # noqa: ANN401 - any array type
    """The module whose functions operate on ``a`` (see the module docstring)."""
    if type(a) is np.ndarray:
        return np
    if _is_cupy(a):
        return sys.modules["cupy"]
    namespace = getattr(type(a), "__array_namespace__", None)
    if namespace is not None and not isinstance(a, np.ndarray):
        return a.__array_namespace__()
    return np


def array_kind(a: object) -> str:
    """How error messages name the class of ``a``: ``numpy.ndarray``, ``cupy.ndarray``."""
    cls = type(a)
    return f"{cls.__module__.split('.', 1)[0]}.{cls.__name__}"


def to_host(a: Any) -> np.ndarray:  # noqa: ANN401 - any array type
    """``a`` as a NumPy array: itself on the host, else a device-to-host copy."""
    if isinstance(a, np.ndarray):
        return a
    return array_module(a).asnumpy(a)


def is_writeable(a: Any) -> bool:  # noqa: ANN401 - any array type
    """NumPy's ``flags.writeable``; device arrays have no read-only mode (always True)."""
    return bool(getattr(a.flags, "writeable", True))
