"""The reference executor: runs a step table step by step with NumPy.

Deliberately plain. Step s applies, in table order, every transfer of step s:
``np.<op>(dst[c], src[c], out=dst[c])`` for a reduction and ``dst[c] = src[c]`` for a
copy, where ``x[c]`` is chunk c of rank x's flat buffer (see
:func:`ringpipe.kernels.steps.chunk_bounds`). Every other executor must reproduce its
results bit for bit.
"""

from __future__ import annotations

import numpy as np

from ringpipe.kernels.ops import REDUCE_UFUNCS
from ringpipe.kernels.steps import StepTable, chunk_bounds

__all__ = ["REDUCE_UFUNCS", "run_table_numpy"]


def run_table_numpy(table: StepTable, buffers: list[np.ndarray], op: str) -> None:
    """Execute ``table`` in place on ``buffers`` (one flat, equal-length array per rank).

    Arguments are assumed checked by the caller (:mod:`ringpipe.collectives.api`).
    """
    ufunc = REDUCE_UFUNCS[op]
    bounds = chunk_bounds(buffers[0].size, table.nchunks)
    for transfers in table.steps():
        for t in transfers:
            lo, hi = bounds[t.chunk], bounds[t.chunk + 1]
            if lo == hi:
                continue
            dst = buffers[t.dst][lo:hi]
            src = buffers[t.src][lo:hi]
            if t.reduce:
                ufunc(dst, src, out=dst)
            else:
                dst[...] = src
