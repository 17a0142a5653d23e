"""The CUDA path of the collectives (``backend="cupy"``): the tile-fused executor as a
CUDA kernel, its half-precision arithmetic, launch tuning, peer copies between GPUs,
the array backend and the NCCL baseline. CuPy and ``numba.cuda`` are imported only
when this backend runs.
"""
