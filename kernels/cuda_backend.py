"""``backend="cupy"``: which arrays the GPU path takes, and how they reach the kernel.

The rule, decided when the backend is first asked for (never at ``import ringpipe``):

* **Simulator.** When ``numba.cuda`` is Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``
  was set before ``numba.cuda`` was first imported), rank buffers are **NumPy arrays** and
  the very same kernel (:mod:`ringpipe.kernels.cuda_exec`) runs on the CPU, one Python
  thread per CUDA thread. CuPy is neither needed nor used. This is how CI, which has no
  GPU, tests the kernel logic, and it is slow: keep sizes tiny.
* **GPU.** Otherwise rank buffers are **CuPy arrays**, all on one device ("simulated
  ranks", as in the single-GPU runs of nccl-tests); CuPy and numba-cuda must be
  installed (``pip install "ringpipe[gpu]"``), else an ImportError names what is
  missing. The kernel sees CuPy memory zero-copy through ``__cuda_array_interface__``
  and is launched on CuPy's current stream, so it orders correctly with the caller's
  CuPy work and returns without synchronising.

One rank per device goes through NCCL instead (``algorithm="nccl"``,
:mod:`ringpipe.kernels.cuda_nccl`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ringpipe.kernels.cuda_tuning import (
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

    def check_kernel_ranks(self, where: str, name: str, arrays: Sequence[Any],
                           device: int | None = None) -> None:
        """At most MAX_RANKS ranks, all on one device (``device``, default rank 0's)."""
        if len(arrays) > MAX_RANKS:
            raise ValueError(f"{where}: {name} has {len(arrays)} ranks; the CUDA kernel takes "
                             f"at most {MAX_RANKS} ranks per launch")
        first = self.device_of(arrays[0]) if device is None else device
        for r, a in enumerate(arrays):
            if self.device_of(a) != first:
                raise ValueError(
                    f"{where}: rank {r}: {name}[{r}] is on device {self.device_of(a)} but "
                    f"buffers[0] is on device {first}; backend 'cupy' runs simulated ranks "
                    "on one GPU (use algorithm='nccl' for one rank per device)")

    @property
    def default_tuning(self) -> CudaTuning:
        """The launch used when the caller gives no CudaTuning (tiny under the simulator)."""
        return SIMULATOR_CUDA_TUNING if self.simulated else DEFAULT_CUDA_TUNING

    def run(self, table: StepTable, outs: Sequence[Any], op: str, tuning: CudaTuning | None,
            inputs: Sequence[Any] | None = None) -> None:
        """Run ``table`` with the CUDA kernel (see :func:`cuda_exec.run_table_cuda`).

        ``tuning=None`` takes :attr:`default_tuning`.
        """
        from ringpipe.kernels.cuda_exec import SIMULATOR_IO, run_table_cuda

        tuning = self.default_tuning if tuning is None else tuning

        io = SIMULATOR_IO if self.simulated else _cupy_io(self.xp)
        run_table_cuda(table, outs, op, inputs=inputs, tuning=tuning, io=io)


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
    """Zero-copy views, uploads through CuPy's memory pool, CuPy's current stream."""
    from numba import cuda

    from ringpipe.kernels.cuda_exec import KernelIO

    def wrap(a: Any) -> Any:  # noqa: ANN401 - a numba device array
        # No sync on the array's stream: the kernel is queued behind it on that stream.
        return cuda.as_cuda_array(a, sync=False)

    def upload(host: np.ndarray) -> Any:  # noqa: ANN401 - a numba device array
        # CuPy's pool is stream-ordered: no cudaFree (a device-wide sync) per call.
        return wrap(cupy.asarray(host))

    stream = cuda.external_stream(cupy.cuda.get_current_stream().ptr)
    return KernelIO(wrap, upload, stream)
