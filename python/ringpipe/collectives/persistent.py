"""Persistent all-reduce: check and bind the buffers once, start the collective many times.

The MPI-4 idea (``MPI_Allreduce_init`` then ``MPI_Start``), and what NCCL users get from
registered buffers and CUDA graphs: a training loop all-reduces the *same* buffers every
step, so the argument checks, the step-table lookup, the buffer addresses and the
kernel's tiling need to happen once. :func:`all_reduce_init` does all of that up front
(raising the same errors as :func:`ringpipe.all_reduce`); calling the returned
:class:`PersistentAllReduce` then only launches the kernel on the buffers' current
contents — bitwise the same result as ``ringpipe.all_reduce`` on the same data.

The handle holds the arrays it was given: refill them in place between starts, never
rebind the list's entries (the handle would keep using the old arrays), and do not make
them read-only afterwards (the kernel writes through their addresses, unchecked).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ringpipe.collectives.api import _common, _execute, auto_algorithm
from ringpipe.kernels.numba_exec import DEFAULT_TUNING, KernelTuning, prepare_table_numba
from ringpipe.kernels.registry import step_table

PERSISTENT_BACKENDS = ("numpy", "numba")


@dataclass(frozen=True)
class PersistentAllReduce:
    """A bound all-reduce; call it to run once. ``result`` are the arrays it fills."""

    algorithm: str
    backend: str
    op: str
    result: list[np.ndarray]
    _launch: Callable[[], None]

    def __call__(self) -> list[np.ndarray]:
        """Run the all-reduce on the bound buffers' current contents; returns ``result``."""
        self._launch()
        return self.result


def all_reduce_init(buffers: list[np.ndarray], algorithm: str = "ring",
                    backend: str = "numba", op: str = "sum", *,
                    out: list[np.ndarray] | None = None,
                    tuning: KernelTuning = DEFAULT_TUNING) -> PersistentAllReduce:
    """Check ``buffers`` (and ``out``) once and bind an all-reduce to them.

    Same arguments and errors as :func:`ringpipe.all_reduce`, for the CPU backends
    ``"numpy"`` and ``"numba"``; nothing runs until the handle is called.
    """
    where = "all_reduce_init"
    if not isinstance(backend, str):
        raise TypeError(f"{where}: backend must be a str, got {type(backend).__name__}")
    if backend not in PERSISTENT_BACKENDS:
        raise ValueError(f"{where}: backend {backend!r} has no persistent form; choose one of "
                         f"{', '.join(map(repr, PERSISTENT_BACKENDS))}")
    args = _common(where, "all_reduce", buffers, out, algorithm, backend, op, tuning)
    if algorithm == "auto":
        algorithm, _ = auto_algorithm("all_reduce", args.bufs[0].nbytes, len(args.bufs))
    table = step_table("all_reduce", algorithm, len(args.bufs))
    target = args.bufs if args.outs is None else args.outs
    inputs = None if args.outs is None else args.bufs
    if backend == "numba":
        launch = prepare_table_numba(
            table, target, op, inputs, tuning,
            buffer_addresses=args.buf_addr if args.outs is None else args.out_addr,
            input_addresses=None if args.outs is None else args.buf_addr)
    else:
        out_addr = args.buf_addr if args.outs is None else args.out_addr

        def launch() -> None:
            _execute(table, target, op, backend, tuning, out_addr, inputs, args.buf_addr)

    return PersistentAllReduce(algorithm, backend, op, list(target), launch)
