"""An emulated GPU array module, strict the way CuPy is, for testing device code on a CPU.

``DeviceArray`` wraps a NumPy array ("device memory") and behaves like ``cupy.ndarray``
where it matters for correctness of device code:

* NumPy functions and ufuncs dispatch to it (NEP 13 / NEP 18) and return device arrays;
* mixing a host ``numpy.ndarray`` into a device operation raises TypeError (CuPy:
  "Unsupported type <class 'numpy.ndarray'>");
* implicit conversion to NumPy (``np.asarray(d)``, assigning ``d`` into a host array)
  raises TypeError; the only way back is ``emulated.asnumpy(d)``;
* ``flags`` has no ``writeable``, as in CuPy;
* ufuncs refuse list operands, and Python ints promote by value as in CuPy 13 (NumPy
  1.x rules: ``float32_array / 70000`` is float64), so dtype drift shows on NumPy 2;
* every device-to-host read (``float``, ``int``, ``bool``, boolean-mask indexing,
  ``asnumpy``) is counted in ``EMULATED.syncs``, so tests can bound them;
* ``__array_namespace__`` names the emulated module, which :mod:`ringpipe.arrays` uses.

``EMULATED`` is the module: every NumPy function, with device arrays in and out;
``asarray``/``array`` also take host data (an upload).
Arrays carry a device id (``to_device``); like CuPy, one operation never mixes devices.
``backend="cupy"`` on these arrays is :mod:`emulated_gpu`.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

UPLOADS = ("asarray", "array")


class HostDeviceMix(TypeError):
    """A host NumPy array met a device array."""


class DeviceMismatch(ValueError):
    """Arrays on two devices met in one operation."""


def _unwrap(value, where):
    if isinstance(value, DeviceArray):
        return value.host_view
    if isinstance(value, np.ndarray):
        raise HostDeviceMix(f"{where}: a host numpy.ndarray {value.shape} mixed with device "
                            "arrays")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, where) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v, where) for k, v in value.items()}
    return value


def _wrap(value, device=0):
    if isinstance(value, np.ndarray):
        return DeviceArray(value, device)
    if isinstance(value, np.generic):  # CuPy returns 0-d arrays, never host scalars
        return DeviceArray(np.asarray(value), device)
    if isinstance(value, (list, tuple)):
        return type(value)(_wrap(v, device) for v in value)
    return value


def _cupy13_operands(inputs, where):
    """Ufunc operands as CuPy 13 sees them: no lists, and a Python int acts as the
    smallest NumPy type holding its value (value-based promotion, NumPy 1.x rules)."""
    out = []
    for v in inputs:
        if isinstance(v, (list, tuple)):
            raise TypeError(f"{where}: Unsupported type {type(v).__name__} (CuPy takes "
                            "arrays and scalars)")
        if isinstance(v, int) and not isinstance(v, bool):
            v = np.min_scalar_type(v).type(v)
        out.append(v)
    return tuple(out)


def _device_of(values, where):
    """The one device the operands live on (CuPy refuses operands on two devices)."""
    found = set()

    def visit(v):
        if isinstance(v, DeviceArray):
            found.add(v.device_id)
        elif isinstance(v, (list, tuple)):
            for x in v:
                visit(x)
        elif isinstance(v, dict):
            for x in v.values():
                visit(x)
    visit(values)
    if len(found) > 1:
        raise DeviceMismatch(f"{where}: operands on devices {sorted(found)}")
    return found.pop() if found else 0


class DeviceArray(NDArrayOperatorsMixin):
    """A device array: NumPy memory behind a CuPy-like surface (see module docs)."""

    __slots__ = ("device_id", "host_view")

    def __init__(self, memory: np.ndarray, device: int = 0) -> None:
        self.host_view = memory
        self.device_id = device

    @property
    def device(self):
        return SimpleNamespace(id=self.device_id)

    def _same(self, memory):
        """A result on this array's device."""
        return DeviceArray(memory, self.device_id)

    # -- protocols --------------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed; "
                        "use emulated.asnumpy()")

    def __array_namespace__(self, api_version=None):
        return EMULATED

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        where = f"{ufunc.__name__}.{method}"
        device = _device_of((inputs, kwargs), where)
        inputs = _cupy13_operands(inputs, where) if method == "__call__" else inputs
        args = _unwrap(inputs, where)
        kw = _unwrap(kwargs, where)
        result = getattr(ufunc, method)(*args, **kw)
        if "out" in kwargs and method != "at":
            outs = kwargs["out"]
            return outs[0] if len(outs) == 1 else outs
        return None if method == "at" else _wrap(result, device)

    def __array_function__(self, func, types, args, kwargs):
        where = func.__name__
        device = _device_of((args, kwargs), where)
        return _wrap(func(*_unwrap(args, where), **_unwrap(kwargs, where)), device)

    # -- attributes -------------------------------------------------------------------
    shape = property(lambda self: self.host_view.shape)
    dtype = property(lambda self: self.host_view.dtype)
    ndim = property(lambda self: self.host_view.ndim)
    size = property(lambda self: self.host_view.size)
    itemsize = property(lambda self: self.host_view.itemsize)
    nbytes = property(lambda self: self.host_view.nbytes)
    T = property(lambda self: self._same(self.host_view.T))

    @property
    def flags(self):
        f = self.host_view.flags
        return SimpleNamespace(c_contiguous=f.c_contiguous, f_contiguous=f.f_contiguous,
                               owndata=f.owndata)

    def __len__(self):
        return len(self.host_view)

    def __repr__(self):
        return f"DeviceArray({self.host_view!r}, device={self.device_id})"

    # -- methods ----------------------------------------------------------------------
    def reshape(self, *shape, **kw):
        return self._same(self.host_view.reshape(*shape, **kw))

    def transpose(self, *axes):
        return self._same(self.host_view.transpose(*axes))

    def copy(self):
        return self._same(self.host_view.copy())

    def astype(self, dtype, **kw):
        return self._same(self.host_view.astype(dtype, **kw))

    def min(self, *a, **kw):
        return _wrap(self.host_view.min(*a, **kw), self.device_id)

    def max(self, *a, **kw):
        return _wrap(self.host_view.max(*a, **kw), self.device_id)

    def sum(self, *a, **kw):
        return _wrap(self.host_view.sum(*a, **kw), self.device_id)

    def __getitem__(self, key):
        _device_of((self, key), "__getitem__")
        keys = key if isinstance(key, tuple) else (key,)
        if any(isinstance(k, DeviceArray) and k.dtype == bool for k in keys):
            EMULATED.syncs.append("mask")  # the result's size must come to the host
        return _wrap(self.host_view[_unwrap(key, "__getitem__")], self.device_id)

    def __setitem__(self, key, value):
        _device_of((self, key, value), "__setitem__")
        self.host_view[_unwrap(key, "__setitem__")] = _unwrap(value, "__setitem__")

    def __float__(self):  # a device-to-host sync in CuPy; allowed for 0-d / size-1
        EMULATED.syncs.append("float")
        return float(self.host_view)

    def __int__(self):
        EMULATED.syncs.append("int")
        return int(self.host_view)

    def __bool__(self):
        EMULATED.syncs.append("bool")
        return bool(self.host_view)

    def __iter__(self):
        raise TypeError("iterating a device array element by element is not supported")


class _Module:
    """The emulated array module: NumPy's functions with device arrays in and out."""

    __name__ = "emulated"

    def __init__(self):
        self.syncs = []  # device-to-host reads, in order (tests clear and inspect it)

    def asnumpy(self, a):
        if not isinstance(a, DeviceArray):
            raise TypeError(f"asnumpy takes a device array, got {type(a).__name__}")
        self.syncs.append("asnumpy")
        return a.host_view.copy()

    def __getattr__(self, name):
        attr = getattr(np, name)
        if isinstance(attr, np.ufunc):
            return _Ufunc(attr)
        if isinstance(attr, type) or not callable(attr):
            return attr  # dtypes, classes and constants pass through
        if name in UPLOADS:
            def upload(obj, *args, **kwargs):
                if isinstance(obj, DeviceArray):  # stays on the device
                    return DeviceArray(attr(obj.host_view, *args, **kwargs), obj.device_id)
                # host data: a copy in "device memory", never an alias of the host array
                return DeviceArray(np.array(attr(obj, *args, **kwargs), copy=True))
            return upload

        def call(*args, **kwargs):
            device = _device_of((args, kwargs), name)
            return _wrap(attr(*_unwrap(args, name), **_unwrap(kwargs, name)), device)
        return call


class _Ufunc:
    def __init__(self, ufunc: np.ufunc) -> None:
        self.ufunc = ufunc

    def __call__(self, *args, **kwargs):
        name = self.ufunc.__name__
        device = _device_of((args, kwargs), name)
        args = _cupy13_operands(args, name)
        return _wrap(self.ufunc(*_unwrap(args, name), **_unwrap(kwargs, name)), device)

    def at(self, a, indices, b=None):
        where = f"{self.ufunc.__name__}.at"
        _device_of((a, indices, b), where)
        self.ufunc.at(_unwrap(a, where), _unwrap(indices, where), _unwrap(b, where))


EMULATED = _Module()


def to_device(host: np.ndarray, device: int) -> DeviceArray:
    """An upload of ``host`` to emulated device ``device``."""
    return DeviceArray(np.array(host, copy=True), device)
