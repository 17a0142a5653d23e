"""backend="cupy" without a GPU and without the simulator: clear errors, no surprises."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ringpipe
from ringpipe.collectives.checks import BACKENDS, COLLECTIVE_BACKENDS
from ringpipe.kernels.cuda.tuning import DEFAULT_CUDA_TUNING, SIMULATOR_CUDA_TUNING, CudaTuning

ROOT = Path(__file__).resolve().parents[2]


def test_backend_lists():
    assert COLLECTIVE_BACKENDS == (*BACKENDS, "cupy")
    assert "cupy" not in BACKENDS  # plans and the CLI run on the host backends only


@pytest.mark.parametrize("field", ["threads_per_block", "elems_per_thread", "tile_elems",
                                   "max_blocks"])
def test_cuda_tuning_rejects_bad_values(field):
    with pytest.raises(ValueError, match=f"CudaTuning.{field} must be >= 1, got 0"):
        CudaTuning(**{field: 0})
    with pytest.raises(TypeError, match=f"CudaTuning.{field} must be an int"):
        CudaTuning(**{field: 2.0})
    with pytest.raises(TypeError, match=f"CudaTuning.{field} must be an int"):
        CudaTuning(**{field: True})


def test_cuda_tuning_limits_and_defaults():
    with pytest.raises(ValueError, match="<= 1024"):
        CudaTuning(threads_per_block=2048)
    with pytest.raises(ValueError, match="<= 16"):
        CudaTuning(elems_per_thread=17)
    assert DEFAULT_CUDA_TUNING.threads_per_block % 32 == 0
    assert SIMULATOR_CUDA_TUNING.threads_per_block <= 8


def test_nccl_needs_the_gpu_backend():
    bufs = [np.ones(4, np.float32) for _ in range(2)]
    with pytest.raises(ValueError, match="algorithm 'nccl' needs backend='cupy'"):
        ringpipe.all_reduce(bufs, "nccl", "numba")
    with pytest.raises(ValueError, match="unknown algorithm 'nccl'"):
        ringpipe.broadcast(bufs, 0, "nccl", "numba")
    assert all((b == 1).all() for b in bufs)


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None,
                    reason="CuPy is installed: backend 'cupy' is available here")
def test_missing_cupy_is_named_in_an_import_error():
    code = ("import numpy as np, ringpipe\n"
            "bufs = [np.ones(4, np.float32) for _ in range(2)]\n"
            "try:\n"
            "    ringpipe.all_reduce(bufs, backend='cupy')\n"
            "except ImportError as exc:\n"
            "    print(exc)\n"
            "    assert (bufs[0] == 1).all()\n"
            "else:\n"
            "    raise SystemExit('no ImportError')\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all_reduce: backend 'cupy' needs the cupy package" in proc.stdout
    assert 'pip install "ringpipe[gpu]"' in proc.stdout
    assert "NUMBA_ENABLE_CUDASIM=1" in proc.stdout
