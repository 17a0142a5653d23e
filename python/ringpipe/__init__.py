"""ringpipe: tensor- and pipeline-parallel collectives, schedules and plans.

Optional pieces (MPI, GPU, plotting) are extras; importing ringpipe never needs them.

The names below are imported on first use (PEP 562), so that ``import ringpipe.cli``
(the command line, which must handle Ctrl-C before anything slow is imported) does not
import NumPy and Numba first; ``from ringpipe import all_reduce`` works as usual.
"""

from __future__ import annotations

import importlib  # already imported by the interpreter; nothing slow before ringpipe.cli

TYPE_CHECKING = False

__version__ = "0.1.0"

#: Each public name and the module that defines it.
_EXPORTS = {
    "Batch": "ringpipe.plan.training",
    "CudaTuning": "ringpipe.kernels.cuda.tuning",
    "KernelTuning": "ringpipe.kernels.numba_exec",
    "Mesh": "ringpipe.mesh",
    "PersistentAllReduce": "ringpipe.collectives.persistent",
    "ModelConfig": "ringpipe.model",
    "Plan": "ringpipe.plan.training",
    "PlanResult": "ringpipe.plan.training",
    "StepTable": "ringpipe.kernels.steps",
    "all_gather": "ringpipe.collectives.api",
    "all_reduce": "ringpipe.collectives.api",
    "all_reduce_init": "ringpipe.collectives.persistent",
    "all_to_all": "ringpipe.collectives.all_to_all",
    "broadcast": "ringpipe.collectives.api",
    "chunk_bounds": "ringpipe.kernels.steps",
    "init_params": "ringpipe.model",
    "reduce": "ringpipe.collectives.api",
    "reduce_scatter": "ringpipe.collectives.api",
    "reference_forward_backward": "ringpipe.model",
}

__all__ = [
    "Batch",
    "CudaTuning",
    "KernelTuning",
    "Mesh",
    "ModelConfig",
    "PersistentAllReduce",
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

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports them
    from ringpipe.collectives.all_to_all import all_to_all
    from ringpipe.collectives.api import (
        all_gather,
        all_reduce,
        broadcast,
        reduce,
        reduce_scatter,
    )
    from ringpipe.collectives.persistent import PersistentAllReduce, all_reduce_init
    from ringpipe.kernels.cuda.tuning import CudaTuning
    from ringpipe.kernels.numba_exec import KernelTuning
    from ringpipe.kernels.steps import StepTable, chunk_bounds
    from ringpipe.mesh import Mesh
    from ringpipe.model import ModelConfig, init_params, reference_forward_backward
    from ringpipe.plan.training import Batch, Plan, PlanResult


def __getattr__(name: str) -> object:
    """Import a public name from its module on first use, then keep it here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ringpipe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
