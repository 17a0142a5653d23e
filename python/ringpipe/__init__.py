"""ringpipe: tensor- and pipeline-parallel collectives, schedules and plans.

Optional pieces (MPI, GPU, plotting) are extras; importing ringpipe never needs them.
"""

from ringpipe.collectives import all_gather, all_reduce, broadcast, reduce, reduce_scatter
from ringpipe.kernels.numba_exec import KernelTuning
from ringpipe.kernels.steps import StepTable, chunk_bounds

__version__ = "0.1.0"

__all__ = [
    "KernelTuning",
    "StepTable",
    "all_gather",
    "all_reduce",
    "broadcast",
    "chunk_bounds",
    "reduce",
    "reduce_scatter",
]
