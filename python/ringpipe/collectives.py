"""Public collectives over in-process virtual ranks: one NumPy array per rank.

``all_reduce``, ``reduce_scatter``, ``all_gather``, ``broadcast`` and ``reduce`` check
their arguments (:mod:`ringpipe.checks`) before touching any buffer, look up the step
table of the chosen algorithm (:mod:`ringpipe.kernels.registry`) and run it with the
chosen executor:

* ``backend="numpy"``: :func:`ringpipe.kernels.numpy_exec.run_table_numpy`, the readable
  step-by-step reference;
* ``backend="numba"``: :func:`ringpipe.kernels.numba_exec.run_table_numba`, tile-fused
  and parallel; bitwise equal to the reference for the same algorithm.

They work in place by default and return the result arrays; ``out=`` takes one output
array per rank and leaves ``buffers`` untouched. Semantics follow NCCL: after
``all_reduce`` every rank holds bitwise-identical values; ``reduce`` leaves partial
results on non-root ranks; chunk r of a buffer is ``chunk_bounds(size, N)[r:r+2]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringpipe.checks import (
    BACKENDS,
    SUPPORTED_OPS,
    check_choice,
    check_no_overlap,
    check_rank_arrays,
    check_root,
)
from ringpipe.kernels.memory import addresses
from ringpipe.kernels.numba_exec import DEFAULT_TUNING, KernelTuning, run_table_numba
from ringpipe.kernels.numpy_exec import run_table_numpy
from ringpipe.kernels.registry import ALGORITHMS, step_table
from ringpipe.kernels.steps import StepTable, chunk_bounds


def _flat(arrays: list[np.ndarray]) -> list[np.ndarray]:
    return [a.reshape(-1) for a in arrays]


@dataclass(frozen=True)
class _Checked:
    """Checked arguments: the rank buffers, optional outputs, and their addresses."""

    bufs: list[np.ndarray]
    buf_addr: np.ndarray
    outs: list[np.ndarray] | None
    out_addr: np.ndarray | None

    def run(self, table: StepTable, op: str, backend: str, tuning: KernelTuning,
            in_place: bool) -> list[np.ndarray]:
        """Run ``table`` on the outputs (copying the inputs in first), or in place."""
        if self.outs is None or in_place:
            target, addr = (self.bufs, self.buf_addr) if self.outs is None else (
                self.outs, self.out_addr)
            _execute(table, target, op, backend, tuning, addr)
            return target
        _execute(table, self.outs, op, backend, tuning, self.out_addr, self.bufs, self.buf_addr)
        return self.outs


def _execute(table: StepTable, outs: list[np.ndarray], op: str, backend: str,
             tuning: KernelTuning, out_addr: np.ndarray | None,
             inputs: list[np.ndarray] | None = None, in_addr: np.ndarray | None = None) -> None:
    """Run ``table`` on ``outs``, first copying ``inputs`` into them if given."""
    if backend == "numba":
        run_table_numba(table, outs, op, inputs=inputs, tuning=tuning,
                        buffer_addresses=out_addr, input_addresses=in_addr)
        return
    flat = _flat(outs)
    if inputs is not None:
        for dst, src in zip(flat, _flat(inputs), strict=True):
            dst[...] = src
    run_table_numpy(table, flat, op)


def _common(where: str, collective: str, buffers: object, out: object, algorithm: str,
            backend: str, op: str, *, same_out_shape: bool = True) -> _Checked:
    bufs = check_rank_arrays(where, "buffers", buffers, writeable=out is None)
    check_choice(where, "op", op, SUPPORTED_OPS)
    check_choice(where, "algorithm", algorithm, tuple(ALGORITHMS[collective]))
    check_choice(where, "backend", backend, BACKENDS)
    buf_addr = addresses(bufs)
    if out is None:
        check_no_overlap(where, [("buffers", bufs, buf_addr)])
        return _Checked(bufs, buf_addr, None, None)
    outs = check_rank_arrays(where, "out", out, nranks=len(bufs), writeable=True,
                             same_shape=same_out_shape)
    if outs[0].dtype != bufs[0].dtype:
        raise TypeError(f"{where}: rank 0: out[0] has dtype {outs[0].dtype} but buffers have "
                        f"{bufs[0].dtype}; collectives never cast")
    if same_out_shape and outs[0].shape != bufs[0].shape:
        raise ValueError(f"{where}: rank 0: out[0] has shape {outs[0].shape} but buffers have "
                         f"{bufs[0].shape}")
    out_addr = addresses(outs)
    check_no_overlap(where, [("buffers", bufs, buf_addr), ("out", outs, out_addr)],
                     allow_same_rank=True)
    return _Checked(bufs, buf_addr, outs, out_addr)


def all_reduce(buffers: list[np.ndarray], algorithm: str = "ring", backend: str = "numba",
               op: str = "sum", *, out: list[np.ndarray] | None = None,
               tuning: KernelTuning = DEFAULT_TUNING) -> list[np.ndarray]:
    """Reduce all ranks' buffers elementwise with ``op``; every rank gets the result.

    ``algorithm`` is ``"ring"`` (bandwidth-optimal, 2(N-1) steps) or ``"tree"`` (NCCL's
    double binary tree, log-depth latency). Returns the result arrays: ``buffers`` when
    in place, else ``out``.
    """
    args = _common("all_reduce", "all_reduce", buffers, out, algorithm, backend, op)
    table = step_table("all_reduce", algorithm, len(args.bufs))
    return args.run(table, op, backend, tuning, in_place=False)


def reduce_scatter(buffers: list[np.ndarray], algorithm: str = "ring", backend: str = "numba",
                   op: str = "sum", *, out: list[np.ndarray] | None = None,
                   tuning: KernelTuning = DEFAULT_TUNING) -> list[np.ndarray]:
    """Reduce all buffers; rank r keeps only chunk r of the result.

    In place, rank r's result is chunk r of its (flattened) buffer and the returned list
    holds those views; the rest of each buffer is left with partial sums, as in NCCL.
    With ``out``, ``out[r]`` must have exactly chunk r's length (chunk_bounds(size, N));
    ``buffers`` are untouched.
    """
    where = "reduce_scatter"
    args = _common(where, where, buffers, out, algorithm, backend, op, same_out_shape=False)
    bufs, outs, n = args.bufs, args.outs, len(args.bufs)
    bounds = chunk_bounds(bufs[0].size, n)
    if outs is not None:
        for r, o in enumerate(outs):
            want = int(bounds[r + 1] - bounds[r])
            if o.size != want:
                raise ValueError(f"{where}: rank {r}: out[{r}] has {o.size} elements but chunk "
                                 f"{r} of {bufs[0].size} over {n} ranks has {want}")
    table = step_table(where, algorithm, n)
    if outs is None:
        args.run(table, op, backend, tuning, in_place=True)
        return [b.reshape(-1)[bounds[r]:bounds[r + 1]] for r, b in enumerate(bufs)]
    work = [np.empty(b.size, dtype=b.dtype) for b in bufs]  # outputs are chunk-sized
    _execute(table, work, op, backend, tuning, None, bufs, args.buf_addr)
    for r, o in enumerate(outs):
        o.reshape(-1)[...] = work[r][bounds[r]:bounds[r + 1]]
    return outs


def all_gather(buffers: list[np.ndarray], algorithm: str = "ring", backend: str = "numba",
               *, out: list[np.ndarray] | None = None,
               tuning: KernelTuning = DEFAULT_TUNING) -> list[np.ndarray]:
    """Every rank gets every rank's piece.

    In place, rank r's piece is chunk r of its flattened buffer (chunk_bounds(size, N));
    afterwards all buffers are equal. With ``out``, ``buffers[r]`` is rank r's whole piece
    (all the same shape, c elements) and ``out[r]`` receives the N pieces in rank order
    (N·c elements).
    """
    where = "all_gather"
    args = _common(where, where, buffers, out, algorithm, backend, "sum", same_out_shape=False)
    bufs, outs, n = args.bufs, args.outs, len(args.bufs)
    table = step_table(where, algorithm, n)
    if outs is not None:
        piece = bufs[0].size
        for r, o in enumerate(outs):
            if o.size != n * piece:
                raise ValueError(f"{where}: rank {r}: out[{r}] has {o.size} elements, need "
                                 f"{n} ranks x {piece} = {n * piece}")
        for r, (b, o) in enumerate(zip(bufs, outs, strict=True)):
            o.reshape(-1)[r * piece:(r + 1) * piece] = b.reshape(-1)
    return args.run(table, "sum", backend, tuning, in_place=True)


def broadcast(buffers: list[np.ndarray], root: int = 0, algorithm: str = "ring",
              backend: str = "numba", *, out: list[np.ndarray] | None = None,
              tuning: KernelTuning = DEFAULT_TUNING) -> list[np.ndarray]:
    """Copy the root's buffer to every rank (chain or binary-tree pipeline)."""
    where = "broadcast"
    args = _common(where, where, buffers, out, algorithm, backend, "sum")
    root = check_root(where, root, len(args.bufs))
    table = step_table(where, algorithm, len(args.bufs), root=root)
    if args.outs is not None:
        args.outs[root].reshape(-1)[...] = args.bufs[root].reshape(-1)
    return args.run(table, "sum", backend, tuning, in_place=True)


def reduce(buffers: list[np.ndarray], root: int = 0, algorithm: str = "ring",
           backend: str = "numba", op: str = "sum", *, out: list[np.ndarray] | None = None,
           tuning: KernelTuning = DEFAULT_TUNING) -> list[np.ndarray]:
    """Reduce all buffers into the root's; other ranks are left with partial results."""
    where = "reduce"
    args = _common(where, where, buffers, out, algorithm, backend, op)
    root = check_root(where, root, len(args.bufs))
    table = step_table(where, algorithm, len(args.bufs), root=root)
    return args.run(table, op, backend, tuning, in_place=False)
