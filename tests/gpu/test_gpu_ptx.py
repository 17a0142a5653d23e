"""The CUDA kernel compiles to PTX for the real target (no GPU needed, but NVVM is).

The simulator runs the kernel as Python, so it cannot catch typing errors of the CUDA
target; this compiles every (N, dtype) variant with ``numba.cuda.compile_ptx``. It needs
NVVM (numba-cuda plus ``nvidia-cuda-nvcc-cu12``, or a CUDA toolkit) and is skipped,
with the reason, where that is missing.
"""

import os

import numpy as np
import pytest


def _compiler():
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return None, "NUMBA_ENABLE_CUDASIM is set: numba.cuda is the simulator"
    try:
        return compile_kernel(1, "<f4"), ""
    except Exception as exc:  # noqa: BLE001 - no NVVM, no CUDA driver or bindings, ...
        return None, f"cannot compile PTX here: {type(exc).__name__}: {str(exc)[:200]}"


def compile_kernel(n, dtype):
    import numba
    from numba import cuda, types

    from ringpipe.kernels.cuda.executor import _kernel

    array = types.Array(numba.from_dtype(np.dtype(dtype)), 1, "C")
    ranks = types.UniTuple(array, n)
    signature = (ranks, ranks, types.Array(types.int64, 1, "C"), *([types.int64] * 6),
                 types.boolean)
    return cuda.compile_ptx(_kernel(n, dtype, 4).py_func, signature, cc=(8, 0))[0]


PROBE, REASON = _compiler()
pytestmark = pytest.mark.skipif(PROBE is None, reason=REASON or "no PTX compiler")


@pytest.mark.parametrize("n", [1, 3, 8])
@pytest.mark.parametrize("dtype", ["<f4", "<f8", "<i4", "<i8", "<u2"])
def test_kernel_compiles_for_sm80(n, dtype):
    ptx = compile_kernel(n, dtype)
    assert ".entry" in ptx and "ld.global" in ptx and "st.global" in ptx
