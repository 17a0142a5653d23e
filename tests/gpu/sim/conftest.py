"""Tests of the CUDA kernel under Numba's CUDA simulator.

These files are named ``sim_*.py`` so the main test run does not collect them: the
simulator must be chosen before ``numba.cuda`` is first imported, so they run in a
process of their own, started by ``tests/gpu/test_gpu_sim.py`` as::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/gpu/sim -o python_files='sim_*.py'

(that command also runs them by hand). Nothing here imports ``numba.cuda`` at import
time, because the main run loads this conftest while it walks the folder.
"""

import pytest


@pytest.fixture(autouse=True)
def _require_simulator():
    from numba import cuda

    if "simulator" not in cuda.jit.__module__:
        pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 set before numba.cuda is imported "
                    "(run through tests/gpu/test_gpu_sim.py)")
