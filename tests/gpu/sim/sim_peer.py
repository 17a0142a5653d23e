"""The peer-copy schedule with its reductions run by the CUDA kernel (simulator).

``_CupyPeerOps.combine`` launches the step-table kernel on the two-rank
:func:`pair_table`; here the same launch runs under the simulator, so the peer path's
arithmetic (float16 rounding, NumPy's max/min on signed zeros and NaN) is the kernel's.
"""

import numpy as np
import pytest

import ringpipe
from ringpipe.kernels.cuda.executor import run_table_cuda
from ringpipe.kernels.cuda.peer import pair_table, run_table_peer
from ringpipe.kernels.cuda.tuning import CudaTuning
from ringpipe.kernels.registry import step_table

SMALL = CudaTuning(threads_per_block=4, elems_per_thread=2, tile_elems=8, max_blocks=2)


class SimulatedPeerOps:
    def scratch(self, like, size):
        return np.full(size, 7, dtype=like.dtype)

    def copy(self, dst, src):
        dst[...] = src

    def combine(self, dst, src, op):
        run_table_cuda(pair_table(), [dst, src], op, tuning=SMALL)

    def barrier(self, arrays):
        pass


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.int64])
@pytest.mark.parametrize("op", ["sum", "max", "min"])
@pytest.mark.parametrize("algorithm", ["ring", "tree"])
def test_peer_schedule_with_kernel_reductions_is_bitwise_numpy(dtype, op, algorithm):
    n, size = 3, 11
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(size).astype(dtype) if np.dtype(dtype).kind == "f"
          else rng.integers(-9, 10, size).astype(dtype) for _ in range(n)]
    if np.dtype(dtype).kind == "f":
        xs[0][0], xs[1][0], xs[2][1] = 0.0, -0.0, np.nan
    want = ringpipe.all_reduce([x.copy() for x in xs], algorithm, "numpy", op)
    got = [x.copy() for x in xs]
    run_table_peer(step_table("all_reduce", algorithm, n), got, op, SimulatedPeerOps())
    assert [g.tobytes() for g in got] == [w.tobytes() for w in want]
