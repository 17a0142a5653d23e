"""ringpipe: tensor- and pipeline-parallel collectives, schedules and plans.

Optional pieces (MPI, GPU, plotting) are extras; importing ringpipe never needs them.
"""

from ringpipe.collectives.all_to_all import all_to_all
from ringpipe.collectives.api import all_gather, all_reduce, broadcast, reduce, reduce_scatter
from ringpipe.collectives.persistent import PersistentAllReduce, all_reduce_init
from ringpipe.kernels.cuda.tuning import CudaTuning
from ringpipe.kernels.numba_exec import KernelTuning
from ringpipe.kernels.steps import StepTable, chunk_bounds
from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig, init_params, reference_forward_backward
from ringpipe.plan.training import Batch, Plan, PlanResult

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "CudaTuning",
    "KernelTuning",
    "Mesh",
    "PersistentAllReduce",
    "ModelConfig",
    "Plan",
    "PlanResult",
    "StepTable",
    "all_gather",
    "all_reduce",
    "all_reduce_init",
    "all_to_all",
    "broadcast",
    "chunk_bounds",
    "init_params",
    "reduce",
    "reduce_scatter",
    "reference_forward_backward",
]
