"""Runs the CUDA-simulator tests (tests/gpu/sim) in a process of their own.

``NUMBA_ENABLE_CUDASIM`` only takes effect if it is set before ``numba.cuda`` is first
imported, and this process may already have imported it; so the simulated kernel tests
run in a fresh interpreter with the variable set, under a timeout. They take about
25 s on two cores (tiny sizes, 2-8 threads per block).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_python(args, env_updates, timeout):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env.update(env_updates)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.mark.slow  # ~40 s on 2 cores
def test_kernel_logic_under_the_cuda_simulator():
    proc = run_python(["-m", "pytest", "tests/gpu/sim", "-o", "python_files=sim_*.py", "-q",
                       "-p", "no:cacheprovider", "-rs"],
                      {"NUMBA_ENABLE_CUDASIM": "1"}, timeout=600)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    assert " passed" in tail and "skipped" not in tail and "failed" not in tail, tail


def test_importing_ringpipe_imports_neither_cupy_nor_numba_cuda():
    code = ("import sys, numpy as np, ringpipe\n"
            "ringpipe.all_reduce([np.ones(5, np.float32) for _ in range(3)])\n"
            "bad = [m for m in sys.modules if m.split('.')[0] == 'cupy' or\n"
            "       m.startswith('numba.cuda')]\n"
            "assert not bad, bad\n")
    proc = run_python(["-c", code], {}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
