"""``ringpipe calibrate --backend cupy``: measure one GPU (and, with ``--np``, NCCL between
GPUs) and write a cluster file that describes it.

Probes, all in wall time with the device synchronised (:func:`ringpipe.measure.timer.
sustained_time`):

* **GEMM curve per dtype**: C = A·B for every (M, N, K) of a grid, fitted like the CPU
  curve (:func:`ringpipe.cost.hardware.gemm_curve.fit_gemm_curve`). float16 and bfloat16
  run through cuBLAS's ``cublasGemmEx`` (CuPy's binding, tensor-core algorithm, FP32
  accumulation; bfloat16 has no CuPy dtype, so its operands are raw 16-bit words),
  float32 through ``cupy.matmul``. FP8 needs cuBLASLt's scaled matmul, which CuPy does
  not bind: it is reported as not measured;
* **HBM bandwidth**: ``dst[...] = src`` on 1 GiB (256 MiB with ``--quick``), bytes read
  plus written per second (STREAM copy);
* **kernel-launch overhead**: the time per launch of a one-element kernel issued back to
  back, one synchronisation per batch: what a small kernel costs the host.

**Refusals.** The numbers claim to describe a GPU, so they are only measured on one:
under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), or with an array module that
is not CuPy (the emulated device of the tests), :func:`real_gpu_or_refuse` raises a
ValueError (exit 2, one line) before anything is measured or written.

**The file.** ``peak_tflops`` is the 16-bit (bfloat16, else float16) curve's asymptote
with ``achievable_fraction = 1`` (the measured curve already is what cuBLAS achieves),
``memory_gib`` the device's memory, ``memory_bandwidth_gbs`` the copy bandwidth,
``[kernels]`` the device's SM count with cuBLAS's 128×256 tiles, the curve's half-rate
size as ``saturation`` and the launch overhead. Links: NCCL's, fitted to the
``--np`` probe's runs exactly as nccl-tests logs are (:mod:`ringpipe.measure.nccltests`),
and kept with their measured tables; without ``--np`` the preset of the device's name.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any

import numpy as np

from ringpipe.cost.hardware.gemm_curve import fit_gemm_curve
from ringpipe.kernels.cuda.backend import GpuArrays, gpu_arrays
from ringpipe.measure.calibrate.compute import GemmMeasurement
from ringpipe.measure.timer import Budget, sustained_time

__all__ = ["GPU_DTYPES", "device_facts", "gpu_document", "measure_device", "measure_gemm_gpu",
           "measure_hbm", "measure_launch", "real_gpu_or_refuse"]

#: Dtypes whose GEMM curve is measured, 16-bit first (the planner's peak).
GPU_DTYPES = ("bfloat16", "float16", "float32")
QUICK_SIZES = (256, 1024, 4096)
FULL_SIZES = (128, 512, 1024, 2048, 4096, 8192)
#: cuBLAS / CUDA constants (cublas_api.h, library_types.h).
_CUDA_R = {"float16": 2, "bfloat16": 14, "float32": 0}
_CUBLAS_COMPUTE_32F = 68
_CUBLAS_GEMM_DEFAULT_TENSOR_OP = 99


def real_gpu_or_refuse(where: str, gpu: GpuArrays | None = None) -> GpuArrays:
    """The backend's arrays if they are CuPy on a real device; else ValueError saying
    what runs instead (module docstring)."""
    gpu = gpu_arrays(where) if gpu is None else gpu
    if gpu.simulated:
        raise ValueError(f"{where}: this is Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1), "
                         "not a GPU; refusing to write a cluster file that claims GPU numbers")
    if getattr(gpu.xp, "__name__", "") != "cupy":
        raise ValueError(f"{where}: the arrays are {getattr(gpu.xp, '__name__', gpu.xp)!r}, "
                         "not CuPy on a GPU (an emulated device); refusing to write a cluster "
                         "file that claims GPU numbers")
    return gpu


def _sync(xp: Any) -> Callable[[], None]:  # noqa: ANN401 - cupy, or a test's module
    cuda = getattr(xp, "cuda", None)
    return cuda.Stream.null.synchronize if cuda is not None else (lambda: None)


def _operands(xp: Any, dtype: str, m: int, n: int, k: int) -> tuple[Any, Any, Any]:  # noqa: ANN401
    """A, B, C of one GEMM (bfloat16 as the top halves of float32 words)."""
    rng = np.random.default_rng(0)
    a32 = rng.standard_normal((m, k), dtype=np.float32)
    b32 = rng.standard_normal((k, n), dtype=np.float32)
    if dtype == "bfloat16":
        def bf16(x: np.ndarray) -> Any:  # noqa: ANN401
            return xp.asarray((x.view(np.uint32) >> 16).astype(np.uint16))
        return bf16(a32), bf16(b32), xp.empty((m, n), dtype=np.uint16)
    dt = np.dtype(dtype)
    return xp.asarray(a32.astype(dt)), xp.asarray(b32.astype(dt)), xp.empty((m, n), dtype=dt)


def _gemm_call(xp: Any, dtype: str, m: int, n: int, k: int) -> Callable[[], None]:  # noqa: ANN401
    """One C = A·B on the device, synchronised (module docstring)."""
    a, b, c = _operands(xp, dtype, m, n, k)
    sync = _sync(xp)
    if dtype == "float32" or getattr(xp, "__name__", "") != "cupy":
        if dtype == "bfloat16":
            raise ValueError("bfloat16 GEMMs need cuBLAS through CuPy")

        def run_matmul() -> None:
            xp.matmul(a, b, out=c)
            sync()
        return run_matmul
    from cupy.cuda import cublas  # noqa: PLC0415 - only on a GPU
    from cupy.cuda.device import get_cublas_handle  # noqa: PLC0415

    one, zero = np.ones(1, np.float32), np.zeros(1, np.float32)
    kind = _CUDA_R[dtype]
    # row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: swap the operands, no transposes
    args = (get_cublas_handle(), 0, 0, n, m, k, one.ctypes.data, b.data.ptr, kind, n,
            a.data.ptr, kind, k, zero.ctypes.data, c.data.ptr, kind, n,
            _CUBLAS_COMPUTE_32F, _CUBLAS_GEMM_DEFAULT_TENSOR_OP)

    def run_gemm_ex() -> None:
        cublas.gemmEx(*args)
        sync()
    run_gemm_ex.keep = (a, b, c, one, zero)  # type: ignore[attr-defined]
    return run_gemm_ex


def measure_gemm_gpu(xp: Any, dtype: str, sizes: tuple[int, ...],  # noqa: ANN401
                     budget: Budget) -> GemmMeasurement:
    """The GEMM curve of ``dtype`` over ``sizes``³ (module docstring)."""
    shapes, seconds = [], []
    for m in sizes:
        for n in sizes:
            for k in sizes:
                shapes.append((m, n, k))
                seconds.append(sustained_time(_gemm_call(xp, dtype, m, n, k), budget))
    return GemmMeasurement(dtype, tuple(shapes), tuple(seconds),
                           fit_gemm_curve(shapes, seconds))


def measure_hbm(xp: Any, nbytes: int, budget: Budget) -> float:  # noqa: ANN401
    """Device copy bandwidth, bytes read + written per second."""
    src = xp.ones(max(1, nbytes // 8), dtype=np.float64)
    dst = xp.empty_like(src)
    sync = _sync(xp)

    def copy() -> None:
        dst[...] = src
        sync()
    return 2.0 * src.nbytes / sustained_time(copy, budget)


def measure_launch(xp: Any, budget: Budget, batch: int = 200) -> float:  # noqa: ANN401
    """Seconds per launch of a one-element kernel, ``batch`` back to back per sync."""
    x = xp.zeros(1, dtype=np.float32)
    sync = _sync(xp)

    def launches() -> None:
        for _ in range(batch):
            xp.add(x, 1.0, out=x)
        sync()
    return sustained_time(launches, budget) / batch


def device_facts(xp: Any) -> dict[str, Any]:  # noqa: ANN401
    """Name, SM count and memory of the current device (CuPy's runtime)."""
    props = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return {"name": name, "sm_count": int(props["multiProcessorCount"]),
            "memory_gib": float(props["totalGlobalMem"]) / 2**30}


def measure_device(xp: Any, quick: bool, budget: Budget,  # noqa: ANN401
                   progress: Callable[[str], None],
                   dtypes: tuple[str, ...] = GPU_DTYPES) -> dict[str, Any]:
    """The ``[measured]`` numbers of one GPU (module docstring), GEMM curves of
    ``dtypes``."""
    progress("[1/3] kernel-launch overhead and HBM bandwidth")
    launch = measure_launch(xp, budget)
    hbm = measure_hbm(xp, (256 if quick else 1024) << 20, budget)
    gemm: dict[str, Any] = {}
    sizes = QUICK_SIZES if quick else FULL_SIZES
    for dtype in dtypes:
        progress(f"[2/3] GEMM curve, {dtype}: {len(sizes) ** 3} shapes")
        g = measure_gemm_gpu(xp, dtype, sizes, budget)
        gemm[dtype] = {"peak_gflops": g.curve.peak_flops / 1e9, "m0": g.curve.m0,
                       "n0": g.curve.n0, "k0": g.curve.k0, "fixed_us": g.curve.fixed * 1e6,
                       "best_gflops": g.best_flops / 1e9,
                       "shapes": [list(s) for s in g.shapes], "seconds": list(g.seconds)}
    return {"host": platform.node(), "cores": os.cpu_count() or 1, "blas_threads": 1,
            "backend": "cupy", "quick": quick, "call_overhead_us": launch * 1e6,
            "memory_bandwidth_gbs": hbm / 1e9, "gemm": gemm}


def gpu_document(facts: dict[str, Any], measured: dict[str, Any],
                 base: dict[str, Any]) -> dict[str, Any]:
    """The cluster file: ``base`` (a preset's file form, links included) with the
    device's measured numbers (module docstring)."""
    gemm = measured["gemm"]
    sixteen = gemm.get("bfloat16") or gemm.get("float16") or gemm["float32"]
    doc = dict(base)
    doc.update(name=f"calibrated-{facts['name'].replace(' ', '-')}", device="gpu",
               peak_tflops=sixteen["peak_gflops"] / 1e3, memory_gib=facts["memory_gib"],
               memory_bandwidth_gbs=measured["memory_bandwidth_gbs"], achievable_fraction=1.0)
    doc["kernels"] = {**base["kernels"], "sm_count": facts["sm_count"],
                      "launch_overhead_us": measured["call_overhead_us"],
                      "saturation": (sixteen["m0"] + sixteen["n0"] + sixteen["k0"]) / 3}
    doc["measured"] = dict(measured)
    return doc

