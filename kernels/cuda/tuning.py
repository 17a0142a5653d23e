"""Launch geometry of the CUDA step-table kernel, as one frozen value.

Kept apart from :mod:`ringpipe.kernels.cuda.executor` so that :mod:`ringpipe.collectives.api`
can name it without importing ``numba.cuda`` (which must stay unimported until a GPU
backend is asked for: ``NUMBA_ENABLE_CUDASIM`` is read when it is first imported).
Tests patch the sizes small (as stumpy does) to force many blocks, many tiles per chunk
and the grid-stride loop on a few dozen elements.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Most ranks one kernel launch takes: the kernel's parameters carry two tuples of N
#: array descriptors (56 bytes each), which must fit CUDA's 4 KiB parameter space.
MAX_RANKS = 32


@dataclass(frozen=True)
class CudaTuning:
    """How the CUDA executor cuts the work.

    Attributes:
        threads_per_block: CUDA threads per block (a multiple of the 32-thread warp on
            real GPUs; anything >= 1 under the simulator).
        elems_per_thread: elements one thread carries through a chunk's transfers at
            once; amortises the per-transfer table reads and keeps
            ``elems_per_thread · N`` independent loads in flight per thread.
        tile_elems: elements of one chunk that one work item (a block's turn) covers.
        max_blocks: cap on the grid; blocks loop over work items (grid-stride) beyond it.
    """

    threads_per_block: int = 256
    elems_per_thread: int = 4
    tile_elems: int = 8192
    max_blocks: int = 8192

    def __post_init__(self) -> None:
        for name in ("threads_per_block", "elems_per_thread", "tile_elems", "max_blocks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"CudaTuning.{name} must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"CudaTuning.{name} must be >= 1, got {value}")
        if self.threads_per_block > 1024:
            raise ValueError("CudaTuning.threads_per_block must be <= 1024 (CUDA's limit), "
                             f"got {self.threads_per_block}")
        if self.elems_per_thread > 16:
            raise ValueError("CudaTuning.elems_per_thread must be <= 16 (registers), got "
                             f"{self.elems_per_thread}")


DEFAULT_CUDA_TUNING = CudaTuning()

#: The default under Numba's CUDA simulator, where every CUDA thread is a Python thread:
#: a few threads per block keep the simulated launch fast while still spanning blocks.
SIMULATOR_CUDA_TUNING = CudaTuning(threads_per_block=8, elems_per_thread=2, tile_elems=64,
                                   max_blocks=16)
