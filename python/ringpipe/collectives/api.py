"""Public collectives over in-process virtual ranks: one NumPy array per rank.

``all_reduce``, ``reduce_scatter``, ``all_gather``, ``broadcast`` and ``reduce`` check
their arguments (:mod:`ringpipe.collectives.checks`) before touching any buffer, look up the step
table of the chosen algorithm (:mod:`ringpipe.kernels.registry`) and run it with the
chosen executor:

* ``backend="numpy"``: :func:`ringpipe.kernels.numpy_exec.run_table_numpy`, the readable
  step-by-step reference;
* ``backend="numba"``: :func:`ringpipe.kernels.numba_exec.run_table_numba`, tile-fused
  and parallel; bitwise equal to the reference for the same algorithm. A ring/tree
  ``all_reduce`` on plain ndarrays (in place or with plain ``out=`` arrays) first tries
  the one-shot path
  (:mod:`ringpipe.kernels.numba_oneshot`: checks and kernel in one compiled call),
  which falls back to the full checks below for anything else;
* ``backend="cupy"``: :func:`ringpipe.kernels.cuda.executor.run_table_cuda`, the
  same tile-fused schedule as a CUDA kernel, bitwise equal too. Ranks are CuPy arrays on
  one GPU, or on several (then transfer by transfer, with peer copies); under Numba's CUDA
  simulator (``NUMBA_ENABLE_CUDASIM=1``) they are NumPy arrays and the kernel runs on
  the CPU (see :mod:`ringpipe.kernels.cuda.backend`). Its ``tuning`` is a
  :class:`~ringpipe.kernels.cuda.tuning.CudaTuning` (a ``KernelTuning``, the default,
  selects the backend's default launch). ``all_reduce(..., algorithm="nccl")`` calls
  NCCL instead, one rank per GPU (:mod:`ringpipe.kernels.cuda.nccl`). CuPy and
  ``numba.cuda`` are imported only when this backend is used.

They work in place by default and return the result arrays; ``out=`` takes one output
array per rank and leaves ``buffers`` untouched. Semantics follow NCCL: after
``all_reduce`` every rank holds bitwise-identical values; ``reduce`` leaves partial
results on non-root ranks; chunk r of a buffer is ``chunk_bounds(size, N)[r:r+2]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ringpipe.collectives.checks import (
    COLLECTIVE_BACKENDS,
    SUPPORTED_OPS,
    check_choice,
    check_no_overlap,
    check_rank_arrays,
    check_root,
)
from ringpipe.collectives.choice import auto_algorithm
from ringpipe.kernels.cuda.backend import GpuArrays, gpu_arrays
from ringpipe.kernels.cuda.nccl import nccl_all_reduce
from ringpipe.kernels.cuda.tuning import CudaTuning
from ringpipe.kernels.memory import addresses
from ringpipe.kernels.numba_exec import DEFAULT_TUNING, KernelTuning, run_table_numba
from ringpipe.kernels.numba_oneshot import run_plain_in_place
from ringpipe.kernels.numpy_exec import run_table_numpy
from ringpipe.kernels.ops import OPCODES
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
    gpu: GpuArrays | None = None  # backend "cupy": what its arrays are and how they run

    def assign(self, dst: Any, src: Any) -> None:  # noqa: ANN401 - numpy or cupy arrays
        """``dst[...] = src`` for one rank (on that rank's device, for the GPU)."""
        if self.gpu is None:
            dst[...] = src
        else:
            self.gpu.assign(dst, src)

    def empty(self, size: int, rank: int) -> Any:  # noqa: ANN401 - a numpy or cupy array
        """A flat scratch array of ``size`` elements beside rank ``rank``'s buffer."""
        if self.gpu is None:
            return np.empty(size, dtype=self.bufs[0].dtype)
        return self.gpu.empty(size, self.bufs[rank])

    def run(self, table: StepTable, op: str, backend: str, tuning: KernelTuning | CudaTuning,
            in_place: bool) -> list[np.ndarray]:
        """Run ``table`` on the outputs (copying the inputs in first), or in place."""
        if self.outs is None or in_place:
            target, addr = (self.bufs, self.buf_addr) if self.outs is None else (
                self.outs, self.out_addr)
            _execute(table, target, op, backend, tuning, addr, gpu=self.gpu)
            return target
        _execute(table, self.outs, op, backend, tuning, self.out_addr, self.bufs, self.buf_addr,
                 gpu=self.gpu)
        return self.outs


def _execute(table: StepTable, outs: list[np.ndarray], op: str, backend: str,
             tuning: KernelTuning | CudaTuning, out_addr: np.ndarray | None,
             inputs: list[np.ndarray] | None = None, in_addr: np.ndarray | None = None,
             gpu: GpuArrays | None = None) -> None:
    """Run ``table`` on ``outs``, first copying ``inputs`` into them if given."""
    if gpu is not None:
        gpu.run(table, outs, op, tuning if isinstance(tuning, CudaTuning) else None, inputs)
        return
    if backend == "numba":
        run_table_numba(table, outs, op, inputs=inputs, tuning=tuning,
                        buffer_addresses=out_addr, input_addresses=in_addr)
        return
    flat = _flat(outs)
    if inputs is not None:
        for dst, src in zip(flat, _flat(inputs), strict=True):
            dst[...] = src
    run_table_numpy(table, flat, op)


def _check_tuning(where: str, backend: str, tuning: object) -> None:
    if not isinstance(tuning, (KernelTuning, CudaTuning)):
        raise TypeError(f"{where}: tuning must be a KernelTuning or CudaTuning, got "
                        f"{type(tuning).__name__}")
    if isinstance(tuning, CudaTuning) and backend != "cupy":
        raise TypeError(f"{where}: tuning is a CudaTuning, which only backend 'cupy' takes; "
                        f"backend {backend!r} takes a KernelTuning")


def _common(where: str, collective: str, buffers: object, out: object, algorithm: str,
            backend: str, op: str, tuning: object, *, same_out_shape: bool = True) -> _Checked:
    check_choice(where, "backend", backend, COLLECTIVE_BACKENDS)
    gpu = gpu_arrays(where) if backend == "cupy" else None  # ImportError if it can't run
    array_type = np.ndarray if gpu is None else gpu.array_type
    bufs = check_rank_arrays(where, "buffers", buffers, writeable=out is None,
                             array_type=array_type)
    check_choice(where, "op", op, SUPPORTED_OPS)
    if algorithm == "auto" and collective == "all_reduce":
        # resolved by all_reduce from the cost model, once the buffers are known
        if gpu is not None:
            gpu.check_placement(where, "buffers", bufs)
    elif algorithm == "nccl" and collective == "all_reduce":
        if gpu is None:
            raise ValueError(f"{where}: algorithm 'nccl' needs backend='cupy' (CuPy arrays, "
                             "one rank per GPU)")
        if gpu.simulated:
            raise RuntimeError(f"{where}: algorithm 'nccl' needs real GPUs; Numba's CUDA "
                               "simulator (NUMBA_ENABLE_CUDASIM=1) has no NCCL")
    else:
        check_choice(where, "algorithm", algorithm, tuple(ALGORITHMS[collective]))
        if gpu is not None:
            gpu.check_placement(where, "buffers", bufs)
    _check_tuning(where, backend, tuning)
    buf_addr = addresses(bufs) if gpu is None else gpu.addresses(bufs)
    if out is None:
        check_no_overlap(where, [("buffers", bufs, buf_addr)])
        return _Checked(bufs, buf_addr, None, None, gpu)
    outs = check_rank_arrays(where, "out", out, nranks=len(bufs), writeable=True,
                             same_shape=same_out_shape, array_type=array_type)
    if gpu is not None and algorithm != "nccl":
        gpu.check_placement(where, "out", outs, like=bufs)
    if outs[0].dtype != bufs[0].dtype:
        raise TypeError(f"{where}: rank 0: out[0] has dtype {outs[0].dtype} but buffers have "
                        f"{bufs[0].dtype}; collectives never cast")
    if same_out_shape and outs[0].shape != bufs[0].shape:
        raise ValueError(f"{where}: rank 0: out[0] has shape {outs[0].shape} but buffers have "
                         f"{bufs[0].shape}")
    out_addr = addresses(outs) if gpu is None else gpu.addresses(outs)
    check_no_overlap(where, [("buffers", bufs, buf_addr), ("out", outs, out_addr)],
                     allow_same_rank=True)
    return _Checked(bufs, buf_addr, outs, out_addr, gpu)


#: Rank counts up to which in-place numba all-reduces try the one-shot path first.
_PLAIN_MAX_RANKS = 256


def _plain_all_reduce(buffers: object, out: object, algorithm: object, backend: object,
                      op: object, tuning: object) -> bool:
    """The small-message path (:mod:`ringpipe.kernels.numba_oneshot`): True when it ran
    a ring/tree numba all-reduce on plain buffers, in place or into plain ``out``
    arrays; False (nothing touched) when :func:`all_reduce` must check the arguments
    in full."""
    if (type(buffers) not in (list, tuple) or not 0 < len(buffers) <= _PLAIN_MAX_RANKS
            or backend != "numba" or type(tuning) is not KernelTuning
            or type(op) is not str or op not in OPCODES
            or (algorithm != "ring" and algorithm != "tree")):
        return False
    if out is not None and (type(out) not in (list, tuple) or len(out) != len(buffers)):
        return False
    table = step_table("all_reduce", algorithm, len(buffers))
    return run_plain_in_place(table, buffers, op, tuning, out)


def all_reduce(buffers: list[np.ndarray], algorithm: str = "ring", backend: str = "numba",
               op: str = "sum", *, out: list[np.ndarray] | None = None,
               tuning: KernelTuning | CudaTuning = DEFAULT_TUNING) -> list[np.ndarray]:
    """Reduce all ranks' buffers elementwise with ``op``; every rank gets the result.

    ``algorithm`` is ``"ring"`` (bandwidth-optimal, 2(N-1) steps) or ``"tree"`` (NCCL's
    double binary tree, log-depth latency); with ``backend="cupy"`` also ``"nccl"``
    (NCCL itself, one rank per GPU); ``"auto"`` picks ring or tree from a cost
    model of this host (:func:`auto_algorithm` says why). Returns the result arrays:
    ``buffers`` when in place, else ``out``.
    """
    if _plain_all_reduce(buffers, out, algorithm, backend, op, tuning):
        return list(buffers if out is None else out)
    args = _common("all_reduce", "all_reduce", buffers, out, algorithm, backend, op, tuning)
    if algorithm == "auto":
        algorithm, _ = auto_algorithm("all_reduce", args.bufs[0].nbytes, len(args.bufs))
    if algorithm == "nccl":
        return nccl_all_reduce("all_reduce", args.bufs, args.outs, op)
    table = step_table("all_reduce", algorithm, len(args.bufs))
    return args.run(table, op, backend, tuning, in_place=False)


def reduce_scatter(buffers: list[np.ndarray], algorithm: str = "ring", backend: str = "numba",
                   op: str = "sum", *, out: list[np.ndarray] | None = None,
                   tuning: KernelTuning | CudaTuning = DEFAULT_TUNING) -> list[np.ndarray]:
    """Reduce all buffers; rank r keeps only chunk r of the result.

    In place, rank r's result is chunk r of its (flattened) buffer and the returned list
    holds those views; the rest of each buffer is left with partial sums, as in NCCL.
    With ``out``, ``out[r]`` must have exactly chunk r's length (chunk_bounds(size, N));
    ``buffers`` are untouched.
    """
    where = "reduce_scatter"
    args = _common(where, where, buffers, out, algorithm, backend, op, tuning,
                   same_out_shape=False)
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
    work = [args.empty(b.size, r) for r, b in enumerate(bufs)]  # outputs are chunk-sized
    _execute(table, work, op, backend, tuning, None, bufs, args.buf_addr, gpu=args.gpu)
    for r, o in enumerate(outs):
        args.assign(o.reshape(-1), work[r][bounds[r]:bounds[r + 1]])
    return outs


def all_gather(buffers: list[np.ndarray], algorithm: str = "ring", backend: str = "numba",
               *, out: list[np.ndarray] | None = None,
               tuning: KernelTuning | CudaTuning = DEFAULT_TUNING) -> list[np.ndarray]:
    """Every rank gets every rank's piece.

    In place, rank r's piece is chunk r of its flattened buffer (chunk_bounds(size, N));
    afterwards all buffers are equal. With ``out``, ``buffers[r]`` is rank r's whole piece
    (all the same shape, c elements) and ``out[r]`` receives the N pieces in rank order
    (N·c elements).
    """
    where = "all_gather"
    args = _common(where, where, buffers, out, algorithm, backend, "sum", tuning,
                   same_out_shape=False)
    bufs, outs, n = args.bufs, args.outs, len(args.bufs)
    table = step_table(where, algorithm, n)
    if outs is not None:
        piece = bufs[0].size
        for r, o in enumerate(outs):
            if o.size != n * piece:
                raise ValueError(f"{where}: rank {r}: out[{r}] has {o.size} elements, need "
                                 f"{n} ranks x {piece} = {n * piece}")
        for r, (b, o) in enumerate(zip(bufs, outs, strict=True)):
            args.assign(o.reshape(-1)[r * piece:(r + 1) * piece], b.reshape(-1))
    return args.run(table, "sum", backend, tuning, in_place=True)


def broadcast(buffers: list[np.ndarray], root: int = 0, algorithm: str = "ring",
              backend: str = "numba", *, out: list[np.ndarray] | None = None,
              tuning: KernelTuning | CudaTuning = DEFAULT_TUNING) -> list[np.ndarray]:
    """Copy the root's buffer to every rank (chain or binary-tree pipeline)."""
    where = "broadcast"
    args = _common(where, where, buffers, out, algorithm, backend, "sum", tuning)
    root = check_root(where, root, len(args.bufs))
    table = step_table(where, algorithm, len(args.bufs), root=root)
    if args.outs is not None:
        args.assign(args.outs[root].reshape(-1), args.bufs[root].reshape(-1))
    return args.run(table, "sum", backend, tuning, in_place=True)


def reduce(buffers: list[np.ndarray], root: int = 0, algorithm: str = "ring",
           backend: str = "numba", op: str = "sum", *, out: list[np.ndarray] | None = None,
           tuning: KernelTuning | CudaTuning = DEFAULT_TUNING) -> list[np.ndarray]:
    """Reduce all buffers into the root's; other ranks are left with partial results."""
    where = "reduce"
    args = _common(where, where, buffers, out, algorithm, backend, op, tuning)
    root = check_root(where, root, len(args.bufs))
    table = step_table(where, algorithm, len(args.bufs), root=root)
    return args.run(table, op, backend, tuning, in_place=False)
