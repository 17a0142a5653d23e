"""Numba loops that load Numba only when the work pays for it.

The validator's and simulator's loops are written for ``numba.njit`` (plain loops over
NumPy arrays). Importing Numba and loading its cached machine code takes 0.3–0.5 s,
longer than running the same loop as plain Python on a schedule of a few hundred
actions. :func:`lazy_njit` therefore wraps each loop in a :class:`LazyKernel` that

* runs the plain Python function (``py_func``) while its array arguments hold at most
  :data:`SMALL_WORK` elements in all and no kernel has been compiled yet, and
* otherwise compiles every registered kernel with ``numba.njit(cache=True)``, puts the
  compiled dispatchers in place of the wrappers in the modules that hold them (so the
  compiled loops call compiled loops), and runs the compiled one from then on.

The two modes compute the same values: the loops use integer arithmetic and IEEE
float64 operations in a fixed order, which Numba (no ``fastmath``) and NumPy scalars
perform alike; ``tests/schedules/test_lazy_jit.py`` compares them on every built-in
schedule.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

#: Total elements of a call's array arguments up to which the loop runs as plain Python.
SMALL_WORK = 4096

_REGISTRY: list[LazyKernel] = []


class LazyKernel:
    """A Numba-compatible loop, run as Python on small inputs (module docstring)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.py_func = fn
        self.dispatcher: Any = None
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any) -> Any:  # noqa: ANN401 - whatever the loop returns
        if self.dispatcher is None:
            work = sum(a.size for a in args if isinstance(a, np.ndarray))
            if work <= SMALL_WORK:
                return self.py_func(*args)
            compile_all()
        return self.dispatcher(*args)


def lazy_njit(fn: Callable[..., Any]) -> LazyKernel:
    """Register ``fn`` as a :class:`LazyKernel` (the decorator the loops use)."""
    kernel = LazyKernel(fn)
    _REGISTRY.append(kernel)
    return kernel


def compile_all() -> None:
    """Import Numba, wrap every registered loop in ``njit(cache=True)`` and replace the
    wrappers by the dispatchers in the modules that define or import them."""
    if all(k.dispatcher is not None for k in _REGISTRY):
        return
    from numba import njit  # noqa: PLC0415 - the point of this module

    for kernel in _REGISTRY:
        if kernel.dispatcher is None:
            kernel.dispatcher = njit(cache=True)(kernel.py_func)
    for namespace in {id(k.py_func.__globals__): k.py_func.__globals__
                      for k in _REGISTRY}.values():
        for name, value in list(namespace.items()):
            if isinstance(value, LazyKernel):
                namespace[name] = value.dispatcher
