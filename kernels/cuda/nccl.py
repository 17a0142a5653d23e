"""The NCCL baseline: ``all_reduce(..., algorithm="nccl", backend="cupy")``.

One rank per GPU, one process: the rank buffers are CuPy arrays on distinct devices,
and NCCL (through ``cupy.cuda.nccl``) does the all-reduce with its own algorithms
(ring, tree, NVLS, ... chosen by its tuner; NCCL ``src/enqueue.cc``). It is the
yardstick the step-table kernels are measured against, not a step table: NCCL fixes
its own reduction order, so results equal the numpy executor's exactly only where
every order gives the same bits (integers, or nccl-tests-style small-integer floats).

Communicators come from ``ncclCommInitAll`` over the ranks' devices (NCCL's
single-process, multi-GPU mode), issued for all ranks inside one
``ncclGroupStart``/``ncclGroupEnd`` (required when one thread drives several
devices), each on its device's current CuPy stream. Creating communicators costs far
more than one all-reduce, so they are cached per device tuple (:func:`communicators`;
``communicators.cache_clear()`` destroys them).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from ringpipe.kernels.ops import NCCL_OPS


def _nccl(where: str) -> Any:  # noqa: ANN401 - the cupy.cuda.nccl module
    """``cupy.cuda.nccl`` with NCCL and at least two GPUs, else ImportError/RuntimeError."""
    try:
        import cupy
        from cupy.cuda import nccl
    except ImportError as exc:
        raise ImportError(f"{where}: algorithm 'nccl' needs CuPy built with NCCL "
                          f"(pip install \"ringpipe[gpu]\"): {exc}") from exc
    if not getattr(nccl, "available", False):
        raise RuntimeError(f"{where}: algorithm 'nccl' needs NCCL, but this CuPy has no "
                           "NCCL support (cupy.cuda.nccl.available is False)")
    ngpus = cupy.cuda.runtime.getDeviceCount()
    if ngpus < 2:
        raise RuntimeError(f"{where}: algorithm 'nccl' needs at least 2 GPUs (one rank per "
                           f"device); this machine has {ngpus}. Use algorithm='ring' or "
                           "'tree' for simulated ranks on one GPU")
    return nccl


def check_one_rank_per_device(where: str, name: str, arrays: Sequence[Any]) -> list[int]:
    """Each rank's buffer on its own device; returns the device ids in rank order."""
    seen: dict[int, int] = {}
    for r, a in enumerate(arrays):
        dev = int(a.device.id)
        if dev in seen:
            raise ValueError(f"{where}: rank {r}: {name}[{r}] is on device {dev}, like "
                             f"{name}[{seen[dev]}]; algorithm 'nccl' takes one rank per "
                             "device (use 'ring' or 'tree' for ranks sharing a GPU)")
        seen[dev] = r
    return list(seen)


@lru_cache(maxsize=8)
def communicators(devices: tuple[int, ...]) -> tuple[Any, ...]:
    """One NCCL communicator per device, rank r on ``devices[r]`` (cached)."""
    from cupy.cuda import nccl

    return tuple(nccl.NcclCommunicator.initAll(list(devices)))


def nccl_all_reduce(where: str, bufs: Sequence[Any], outs: Sequence[Any] | None,
                    op: str) -> list[Any]:
    """All-reduce ``bufs`` (in place, or into ``outs``) with NCCL; returns the results.

    Checks everything (NCCL present, >= 2 GPUs, one rank per device, ``out[r]`` on
    ``buffers[r]``'s device) before any call is queued. Asynchronous on each device's
    current CuPy stream, like every CuPy operation.
    """
    nccl = _nccl(where)
    devices = check_one_rank_per_device(where, "buffers", bufs)
    targets = list(bufs) if outs is None else list(outs)
    for r, (b, o) in enumerate(zip(bufs, targets, strict=True)):
        if int(o.device.id) != int(b.device.id):
            raise ValueError(f"{where}: rank {r}: out[{r}] is on device {o.device.id} but "
                             f"buffers[{r}] is on device {b.device.id}")
    dtypes = {np.dtype(np.float16): nccl.NCCL_FLOAT16, np.dtype(np.float32): nccl.NCCL_FLOAT32,
              np.dtype(np.float64): nccl.NCCL_FLOAT64, np.dtype(np.int32): nccl.NCCL_INT32,
              np.dtype(np.int64): nccl.NCCL_INT64}
    datatype, count = dtypes[np.dtype(bufs[0].dtype)], int(bufs[0].size)
    redop = getattr(nccl, NCCL_OPS[op])
    if count == 0:
        return targets
    comms = communicators(tuple(devices))

    import cupy

    nccl.groupStart()
    try:
        for comm, dev, src, dst in zip(comms, devices, bufs, targets, strict=True):
            with cupy.cuda.Device(dev):
                stream = cupy.cuda.get_current_stream()
                comm.allReduce(src.data.ptr, dst.data.ptr, count, datatype, redop, stream.ptr)
    finally:
        nccl.groupEnd()
    return targets
