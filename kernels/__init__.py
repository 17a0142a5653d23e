"""``ringpipe.kernels``: collective algorithms as step tables, and their executors.

* :mod:`ringpipe.kernels.steps` — the step-table IR and chunk boundaries;
* :mod:`ringpipe.kernels.ring` — ring tables (all-reduce, reduce-scatter, all-gather,
  chain broadcast/reduce);
* :mod:`ringpipe.kernels.tree` — NCCL's double binary tree and single-tree
  broadcast/reduce;
* :mod:`ringpipe.kernels.exchange` — point-to-point exchanges: the pairwise all-to-all
  and ring attention's K/V ring pass;
* :mod:`ringpipe.kernels.numpy_exec` — the readable step-by-step reference executor;
* :mod:`ringpipe.kernels.numba_exec` — the tile-fused, parallel Numba executor;
* :mod:`ringpipe.kernels.half` — NumPy-exact float16 arithmetic for Numba on the CPU;
* :mod:`ringpipe.kernels.memory` — cheap buffer addresses;
* :mod:`ringpipe.kernels.jit` — Numba loops that load Numba only when the work pays
  (the schedule validator's and simulator's loops use it);
* :mod:`ringpipe.kernels.cuda.executor` — the same tile-fused execution as a CUDA kernel
  (``backend="cupy"``; runs under ``NUMBA_ENABLE_CUDASIM=1`` without a GPU), with
  :mod:`~ringpipe.kernels.cuda.half`, :mod:`~ringpipe.kernels.cuda.tuning`,
  :mod:`~ringpipe.kernels.cuda.backend` and :mod:`~ringpipe.kernels.cuda.nccl` (the NCCL
  baseline, ``algorithm="nccl"``).
"""
