"""``all_to_all`` over in-process virtual ranks: one NumPy (or CuPy) array per rank.

Rank r's buffer holds N equal blocks of ``count / N`` elements, block j meant for rank
j; afterwards rank r holds, in block i, the block rank i meant for it (MPI_Alltoall and
NCCL's all-to-all with equal counts: the blocks are a matrix transposed across ranks).
``count`` must be a multiple of N, as nccl-tests' ``alltoall_perf`` requires.

The algorithm is the pairwise-exchange step table of
:func:`ringpipe.kernels.exchange.pairwise_all_to_all`, run by the same executors as the
other collectives (``backend="numpy"`` the step-by-step reference, ``"numba"`` the
tile-fused kernel, ``"cupy"`` the CUDA kernel), so every backend and the MPI runtime
(:meth:`ringpipe.mpi.group.ProcessGroup.all_to_all`) give the same bits. The table
works on an N·count-element work buffer per rank (its N² chunks are "the block rank i
sends to rank j"): this rank's blocks are copied into its row, the table runs, and its
column is the result.
"""

from __future__ import annotations

import numpy as np

from ringpipe.collectives.api import _common, _execute
from ringpipe.kernels.cuda.tuning import CudaTuning
from ringpipe.kernels.numba_exec import DEFAULT_TUNING, KernelTuning
from ringpipe.kernels.registry import step_table

__all__ = ["all_to_all"]


def all_to_all(buffers: list[np.ndarray], algorithm: str = "pairwise",
               backend: str = "numba", *, out: list[np.ndarray] | None = None,
               tuning: KernelTuning | CudaTuning = DEFAULT_TUNING) -> list[np.ndarray]:
    """Exchange block j of rank i's buffer with block i of rank j (module docstring).

    In place by default (``buffers`` receive the result and are returned); with
    ``out``, one array per rank of the buffers' size and dtype, ``buffers`` are left
    untouched. Refuses a buffer size that the rank count does not divide (ValueError).
    """
    where = "all_to_all"
    args = _common(where, where, buffers, out, algorithm, backend, "sum", tuning)
    bufs, n = args.bufs, len(args.bufs)
    count = bufs[0].size
    if count % n:
        raise ValueError(f"{where}: buffers have {count} elements, not a multiple of the "
                         f"{n} ranks (each rank sends count / N elements to every rank)")
    target = bufs if args.outs is None else args.outs
    if n == 1:
        if args.outs is not None:
            args.assign(target[0].reshape(-1), bufs[0].reshape(-1))
        return target
    block = count // n
    work = [args.empty(n * count, r) for r in range(n)]
    for r, b in enumerate(bufs):
        args.assign(work[r][r * count:(r + 1) * count], b.reshape(-1))
    _execute(step_table(where, algorithm, n), work, "sum", backend, tuning, None,
             gpu=args.gpu)
    for r, t in enumerate(target):
        args.assign(t.reshape(n, block), work[r].reshape(n, n, block)[:, r, :])
    return target
