"""The one table of reduction ops: every executor and check derives its view from it.

Each op has a name (the ``op=`` argument), the NumPy ufunc that defines its result
(the receiver's value is the first operand: ``dst = ufunc(dst, src)``), the opcode the
compiled kernels (Numba CPU, CUDA) branch on, and the name of NCCL's equivalent
``ncclRedOp_t``. Adding an op means one row here plus its branch in each kernel.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import NamedTuple

import numpy as np


class ReductionOp(NamedTuple):
    """One reduction op: its name, defining ufunc, kernel opcode and NCCL op name."""

    name: str
    ufunc: np.ufunc
    opcode: int
    nccl: str


#: Every supported op, in opcode order.
REDUCTION_OPS: tuple[ReductionOp, ...] = (
    ReductionOp("sum", np.add, 0, "NCCL_SUM"),
    ReductionOp("max", np.maximum, 1, "NCCL_MAX"),
    ReductionOp("min", np.minimum, 2, "NCCL_MIN"),
)

#: The op names, as the argument checks offer them.
SUPPORTED_OPS: tuple[str, ...] = tuple(op.name for op in REDUCTION_OPS)
#: op name -> ufunc (the NumPy reference executor and the MPI engine).
REDUCE_UFUNCS = MappingProxyType({op.name: op.ufunc for op in REDUCTION_OPS})
#: op name -> opcode (the Numba and CUDA kernels).
OPCODES = MappingProxyType({op.name: op.opcode for op in REDUCTION_OPS})
#: op name -> the attribute of ``cupy.cuda.nccl`` holding NCCL's op.
NCCL_OPS = MappingProxyType({op.name: op.nccl for op in REDUCTION_OPS})
