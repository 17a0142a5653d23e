"""``backend="cupy"``: which arrays the GPU path takes, and how they reach the kernel.

The rule, decided when the backend is first asked for (never at ``import ringpipe``):

* **Simulator.** When ``numba.cuda`` is Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``
  was set before ``numba.cuda`` was first imported), rank buffers are **NumPy arrays** and
  the very same kernel (:mod:`ringpipe.kernels.cuda.executor`) runs on the CPU, one Python
  thread per CUDA thread. CuPy is neither needed nor used. This is how CI, which has no
  GPU, tests the kernel logic, and it is slow: keep sizes tiny.
* **GPU.** Otherwise rank buffers are **CuPy arrays**: all on one device ("simulated
  ranks", as in the single-GPU runs of nccl-tests), or spread over devices; CuPy and
  numba-cuda must be installed (``pip install "ringpipe[gpu]"``), else an ImportError
  names what is missing. The kernel sees CuPy memory zero-copy through
  ``__cuda_array_interface__`` and is launched on the current CuPy stream of the ranks'
  device, so it orders correctly with the caller's CuPy work and returns without
  synchronising. (The several-device path below synchronises at every step.)

Ranks on several devices (one rank per GPU) run the same tables transfer by transfer
with peer copies (:mod:`ringpipe.kernels.cuda.peer`); ``algorithm="nccl"`` hands such
ranks to NCCL instead (:mod:`ringpipe.kernels.cuda.nccl`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from ringpipe.kernels.cuda.peer import PeerOps, pair_table, run_table_peer
from ringpipe.kernels.cuda.tuning import (
    DEFAULT_CUDA_TUNING,
    MAX_RANKS,
    SIMULATOR_CUDA_TUNING,
    CudaTuning,
)
from ringpipe.kernels.memory import addresses as host_addresses
from ringpipe.kernels.steps import StepTable

GPU_EXTRA_HINT = ('pip install "ringpipe[gpu]" (cupy-cuda12x and numba-cuda; see the '
                  "README for CUDA 13)")


@dataclass(frozen=True)
class GpuArrays:
    """What backend ``"cupy"`` means in this process.

    Attributes:
        simulated: True under Numba's CUDA simulator.
        xp: the array module of the rank buffers (numpy or cupy).
        array_type: the class rank buffers must be.
    """

    simulated: bool
    xp: ModuleType
    array_type: type

    @property
    def array_name(self) -> str:
        """How error messages name the expected array class."""
        return f"{self.xp.__name__}.ndarray"

    def addresses(self, arrays: Sequence[Any]) -> np.ndarray:
        """Data addresses (host, or device in CUDA's unified address space) as uint64."""
        if self.simulated:
            return host_addresses(list(arrays))
        return np.array([a.data.ptr for a in arrays], dtype=np.uint64)

    def device_of(self, array: Any) -> int:  # noqa: ANN401 - a numpy or cupy array
        """The CUDA device holding ``array`` (0 under the simulator)."""
        return 0 if self.simulated else int(array.device.id)

    def on_several_devices(self, arrays: Sequence[Any]) -> bool:
        """Whether the rank arrays span more than one device (the peer-copy path)."""
        first = self.device_of(arrays[0])
        return any(self.device_of(a) != first for a in arrays)

    def check_placement(self, where: str, name: str, arrays: Sequence[Any],
                        like: Sequence[Any] | None = None) -> None:
        """Ranks on one device: at most MAX_RANKS (one kernel launch takes them all).
        Ranks on several devices run by peer copies (:mod:`ringpipe.kernels.cuda.peer`),
        any number. With ``like`` (the buffers, when checking ``out``), ``arrays[r]`` must
        be on ``like[r]``'s device: a rank's result stays on its own device."""
        if like is not None:
            for r, (a, b) in enumerate(zip(arrays, like, strict=True)):
                if self.device_of(a) != self.device_of(b):
                    raise ValueError(
                        f"{where}: rank {r}: {name}[{r}] is on device {self.device_of(a)} "
                        f"but buffers[{r}] is on device {self.device_of(b)}; each rank's "
                        "output must be on its own buffer's device")
            return
        if len(arrays) > MAX_RANKS and not self.on_several_devices(arrays):
            raise ValueError(f"{where}: {name} has {len(arrays)} ranks on one device; the "
                             f"CUDA kernel takes at most {MAX_RANKS} ranks per launch")

    def empty(self, size: int, like: Any) -> Any:  # noqa: ANN401 - a numpy or cupy array
        """A flat scratch array of ``size`` elements of ``like``'s dtype, on its device."""
        if self.simulated:
            return np.empty(size, dtype=like.dtype)
        with self.xp.cuda.Device(self.device_of(like)):
            return self.xp.empty(size, dtype=like.dtype)

    def peer_ops(self, tuning: CudaTuning) -> PeerOps:
        """The device operations of the peer-copy path, for CuPy arrays."""
        return _CupyPeerOps(self.xp, tuning)

    @property
    def default_tuning(self) -> CudaTuning:
        """The launch used when the caller gives no CudaTuning (tiny under the simulator)."""
        return SIMULATOR_CUDA_TUNING if self.simulated else DEFAULT_CUDA_TUNING

    def run(self, table: StepTable, outs: Sequence[Any], op: str, tuning: CudaTuning | None,
            inputs: Sequence[Any] | None = None) -> None:
        """Run ``table``: one fused kernel when every rank is on one device
        (:func:`cuda_exec.run_table_cuda`), else transfer by transfer with peer copies
        (:func:`cuda_peer.run_table_peer`). ``tuning=None`` takes :attr:`default_tuning`.
        """
        tuning = self.default_tuning if tuning is None else tuning
        if self.on_several_devices(outs):
            run_table_peer(table, outs, op, self.peer_ops(tuning), inputs)
        else:
            self.run_fused(table, outs, op, tuning, inputs)

    def run_fused(self, table: StepTable, outs: Sequence[Any], op: str, tuning: CudaTuning,
                  inputs: Sequence[Any] | None = None) -> None:
        """All ranks on one device: the tile-fused step-table kernel, one launch, on
        that device (for CuPy and for Numba), whichever device is current."""
        from ringpipe.kernels.cuda.executor import SIMULATOR_IO, run_table_cuda

        if self.simulated:
            run_table_cuda(table, outs, op, inputs=inputs, tuning=tuning, io=SIMULATOR_IO)
            return
        from numba import cuda

        device = self.device_of(outs[0])
        with self.xp.cuda.Device(device), cuda.gpus[device]:
            run_table_cuda(table, outs, op, inputs=inputs, tuning=tuning,
                           io=_cupy_io(self.xp))

    def assign(self, dst: Any, src: Any) -> None:  # noqa: ANN401 - numpy or cupy arrays
        """``dst[...] = src`` for one rank's arrays, queued on that rank's device."""
        if self.simulated:
            dst[...] = src
            return
        with self.xp.cuda.Device(self.device_of(dst)):
            dst[...] = src


def simulator_enabled() -> bool:
    """Whether ``numba.cuda`` is the CUDA simulator (imports ``numba.cuda``)."""
    from numba import cuda

    return "simulator" in cuda.jit.__module__


def gpu_arrays(where: str) -> GpuArrays:
    """Resolve backend ``"cupy"`` for this process; ImportError if it cannot run here."""
    try:
        simulated = simulator_enabled()
    except ImportError as exc:  # numba-cuda without its CUDA bindings, say
        raise ImportError(f"{where}: backend 'cupy' needs numba.cuda, which failed to "
                          f"import ({exc}); {GPU_EXTRA_HINT}") from exc
    if simulated:
        return GpuArrays(True, np, np.ndarray)
    try:
        import cupy
    except ImportError as exc:
        raise ImportError(
            f"{where}: backend 'cupy' needs the cupy package, which is not installed: "
            f"{GPU_EXTRA_HINT}; or set NUMBA_ENABLE_CUDASIM=1 before numba.cuda is "
            "imported to run the same kernel on NumPy arrays in Numba's CUDA simulator"
        ) from exc
    return GpuArrays(False, cupy, cupy.ndarray)


def _cupy_io(cupy: ModuleType) -> Any:  # noqa: ANN401 - a cuda_exec.KernelIO
    """Zero-copy views, table metadata resident per device, the current CuPy stream."""
    from numba import cuda

    from ringpipe.kernels.cuda.executor import KernelIO

    def wrap(a: Any) -> Any:  # noqa: ANN401 - a numba device array
        # No sync on the array's stream: the kernel is queued behind it on that stream.
        return cuda.as_cuda_array(a, sync=False)

    device = cupy.cuda.Device().id
    stream = cuda.external_stream(cupy.cuda.get_current_stream().ptr)
    def resident_meta(table: StepTable) -> Any:  # noqa: ANN401 - a numba device array
        return wrap(_resident_table_meta(cupy, table, device))

    return KernelIO(wrap, resident_meta, stream)


@lru_cache(maxsize=256)
def _resident_table_meta(cupy: ModuleType, table: StepTable, device: int) -> Any:  # noqa: ANN401
    """``table``'s kernel metadata in ``device``'s memory, uploaded once and then reused
    (read-only; tables are immutable and cached by their generators)."""
    from ringpipe.kernels.cuda.executor import table_meta

    with cupy.cuda.Device(device):
        meta = cupy.asarray(table_meta(table))
        cupy.cuda.get_current_stream().synchronize()  # resident before any kernel reads it
    return meta


class _CupyPeerOps:
    """:class:`~ringpipe.kernels.cuda.peer.PeerOps` on CuPy arrays, one rank per device.

    Work is queued on each device's current CuPy stream. Copies go through
    ``MemoryPointer.copy_from_device_async`` (a peer copy, enabling peer access, when
    the devices differ); reductions launch the step-table kernel on the receiver's
    device, selected for CuPy and for Numba (both use the device's primary context).
    """

    def __init__(self, cupy: ModuleType, tuning: CudaTuning) -> None:
        self.cupy, self.tuning = cupy, tuning

    def scratch(self, like: Any, size: int) -> Any:  # noqa: ANN401 - a cupy array
        with self.cupy.cuda.Device(like.device.id):
            return self.cupy.empty(size, dtype=like.dtype)

    def copy(self, dst: Any, src: Any) -> None:  # noqa: ANN401
        with self.cupy.cuda.Device(dst.device.id):
            dst.data.copy_from_device_async(src.data, dst.nbytes)

    def combine(self, dst: Any, src: Any, op: str) -> None:  # noqa: ANN401
        from numba import cuda

        from ringpipe.kernels.cuda.executor import run_table_cuda

        device = dst.device.id
        with self.cupy.cuda.Device(device), cuda.gpus[device]:
            run_table_cuda(pair_table(), [dst, src], op, tuning=self.tuning,
                           io=_cupy_io(self.cupy))

    def barrier(self, arrays: Sequence[Any]) -> None:
        for device in sorted({a.device.id for a in arrays}):
            self.cupy.cuda.Device(device).synchronize()
