"""One process per GPU: device selection and the device transports of the MPI runtime.

With ``device=`` :func:`cupy_device_setup` (``--device cupy``), each MPI process of
:func:`~ringpipe.runtime.mpi.run_plan_mpi` computes on its local GPU: the interpreter,
worker and bucket layout are unchanged; only where arrays live and how they move differ.

* **Which GPU.** :func:`select_device` takes the process's *local rank* (its rank among
  the processes of its node, :func:`~ringpipe.mpi.placement.detect_nodes`, so it works
  under ``mpiexec`` and ``srun`` alike) modulo the node's GPU count, like torchrun's
  ``LOCAL_RANK``.
* **PP messages** go through the host: :class:`HostStagedTransport` copies each payload
  device → host, sends it with the MPI transport, and uploads what arrives.
* **TP and DP all-reduces**, chosen by ``--allreduce``:

  - ``ring``/``tree``: ringpipe's step tables over the group's MPI communicator on a host
    copy (:func:`host_staged_reduce`), so every element is reduced in the in-process
    executors' order and the collectives are bitwise equal to ``backend="numpy"``;
  - ``nccl``: one NCCL communicator per mesh group (:class:`NcclGroup`), bootstrapped as
    NCCL documents for MPI programs: rank 0 of the group calls ``ncclGetUniqueId``, the
    id is broadcast over the group's MPI sub-communicator, and every member calls
    ``ncclCommInitRank(size, id, rank)``; the all-reduce runs in place on device memory,
    on the current stream. (Its summation order is NCCL's, so results match to rounding.)

Matmuls run on cuBLAS, so plans agree with the reference to rounding, as on one GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ringpipe.arrays import to_host
from ringpipe.kernels.cuda.backend import GpuArrays, gpu_arrays
from ringpipe.runtime.interpreter import Send

__all__ = ["DeviceSetup", "HostStagedTransport", "NcclGroup", "cupy_device_setup",
           "host_staged_reduce", "select_device"]


@dataclass(frozen=True)
class DeviceSetup:
    """What "compute on this process's GPU" means: the array backend, how to count and
    choose devices, the current stream, and the NCCL module (None where unavailable)."""

    gpu: GpuArrays
    device_count: Callable[[], int]
    use_device: Callable[[int], None]
    stream_ptr: Callable[[], int]
    nccl: Any = None


def cupy_device_setup() -> DeviceSetup:
    """The real setup on CuPy (ImportError naming the extra when CuPy is missing); under
    Numba's CUDA simulator, NumPy arrays on one simulated device (for tests)."""
    gpu = gpu_arrays("--device cupy")
    if gpu.simulated:  # Numba's CUDA simulator: NumPy arrays, one "GPU", no NCCL
        return DeviceSetup(gpu, lambda: 1, lambda i: None, lambda: 0, None)
    import cupy  # noqa: PLC0415 - only with the gpu extra

    try:
        from cupy.cuda import nccl
        nccl_module = nccl if getattr(nccl, "available", True) else None
    except ImportError:
        nccl_module = None
    return DeviceSetup(gpu, cupy.cuda.runtime.getDeviceCount,
                       lambda i: cupy.cuda.Device(i).use(),
                       lambda: cupy.cuda.get_current_stream().ptr, nccl_module)


def select_device(setup: DeviceSetup, local_rank: int) -> int:
    """Use GPU ``local_rank mod count`` and return its index."""
    count = setup.device_count()
    if count < 1:
        raise RuntimeError("--device cupy: this node has no CUDA device")
    index = local_rank % count
    setup.use_device(index)
    return index


class HostStagedTransport:
    """Wraps a host transport: device payloads go out as host copies, arrivals are
    uploaded to the device."""

    def __init__(self, host: Any, upload: Callable[[np.ndarray], Any]) -> None:
        self.host, self.upload = host, upload

    def start(self, sends: list, recvs: list) -> object:
        staged = [Send(s.peer, s.key, [np.ascontiguousarray(to_host(x)) for x in s.payload])
                  for s in sends]
        return self.host.start(staged, recvs)

    def finish(self, handle: object) -> dict | None:
        arrived = self.host.finish(handle)
        if arrived is None:
            return None
        return {key: [self.upload(x) for x in payload] for key, payload in arrived.items()}


def host_staged_reduce(group: Any, algorithm: str,  # noqa: ANN401 - a ProcessGroup
                       upload: Callable[[np.ndarray], Any]) -> Callable[[list], None]:
    """All-reduce of one device buffer with ringpipe's step tables over ``group``."""
    def reduce(buffers: list) -> None:
        (buf,) = buffers
        host = np.array(to_host(buf), copy=True)
        group.all_reduce(host, algorithm)
        buf[...] = upload(host)
    return reduce


_NCCL_DTYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32",
                "float64": "NCCL_FLOAT64", "int32": "NCCL_INT32", "int64": "NCCL_INT64"}


def _world_rank() -> int:
    from ringpipe.mpi.loader import load_mpi

    return load_mpi().COMM_WORLD.Get_rank()


class NcclGroup:
    """An NCCL communicator over the processes of MPI communicator ``comm``."""

    def __init__(self, comm: Any, setup: DeviceSetup) -> None:  # noqa: ANN401
        if setup.nccl is None:
            raise RuntimeError(f"rank {_world_rank()}: --allreduce nccl needs CuPy built "
                               "with NCCL (cupy.cuda.nccl)")
        self.setup, self.nccl = setup, setup.nccl
        self.size, self.rank = comm.Get_size(), comm.Get_rank()
        uid = self.nccl.get_unique_id() if self.rank == 0 else None
        uid = comm.bcast(uid, root=0)
        self.comm = self.nccl.NcclCommunicator(self.size, uid, self.rank)

    def __call__(self, buffers: list) -> None:
        (buf,) = buffers
        code = getattr(self.nccl, _NCCL_DTYPES[np.dtype(buf.dtype).name])
        ptr = int(self.setup.gpu.addresses([buf])[0])
        self.comm.allReduce(ptr, ptr, buf.size, code, self.nccl.NCCL_SUM,
                            self.setup.stream_ptr())
