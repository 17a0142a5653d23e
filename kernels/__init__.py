"""``ringpipe.kernels``: collective algorithms as step tables, and their executors.

* :mod:`ringpipe.kernels.steps` — the step-table IR and chunk boundaries;
* :mod:`ringpipe.kernels.ring` — ring tables (all-reduce, reduce-scatter, all-gather,
  chain broadcast/reduce);
* :mod:`ringpipe.kernels.tree` — NCCL's double binary tree and single-tree
  broadcast/reduce;
* :mod:`ringpipe.kernels.numpy_exec` — the readable step-by-step reference executor;
* :mod:`ringpipe.kernels.numba_exec` — the tile-fused, parallel Numba executor.
"""
