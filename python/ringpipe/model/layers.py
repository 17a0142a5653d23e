"""Tensor-parallel linear layers and Megatron's f / g operators, on lists of tp ranks.

In-process tensor parallelism runs all T ranks of a TP group in one process, so every
operator here takes a list with one array per rank (index = tp rank) and, where it
communicates, a callable ``all_reduce(buffers)`` that sums the list elementwise *in
place* so that afterwards every buffer holds the total. ringpipe's runtime passes
``lambda bufs: ringpipe.all_reduce(bufs, algorithm=..., backend=...)``; the buffers
handed to it are C-contiguous, same-shape, same-dtype and non-overlapping: inside the
layers they are fresh products owned by this module, and :func:`f_backward` /
:func:`g_forward` copy any caller array that is not C-contiguous and writeable or that
may share memory with another buffer of the list.

The f / g pair is from Megatron-LM (Shoeybi et al. 2019, arXiv:1909.08053, section 3,
figure 3): with X replicated on all ranks and a weight A split by columns [A_1..A_T],
then B split by rows [B_1; ..; B_T],

    Y_t = f(X) A_t              (column-parallel: no communication forward)
    Z   = g(sum_t Y_t' B_t)     (row-parallel: partial products summed once)

- f: identity forward, all-reduce backward (each rank's dX_t = dY_t A_t^T is partial);
- g: all-reduce forward, identity backward (dZ is already replicated).

Linear layers compute ``y = x @ W + b`` with W stored (in, out). Weight gradients are
separate (:func:`linear_backward_weight`) so a zero-bubble schedule (Qi et al., ICLR
2024) can run the input-gradient pass I now and the weight-gradient pass W later.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ringpipe.arrays import array_module, is_writeable

AllReduce = Callable[[list[np.ndarray]], object]
"""Sums a list of same-shape arrays elementwise, in place, across the list."""


def check_all_reduce(all_reduce: object) -> None:
    if not callable(all_reduce):
        raise TypeError(f"all_reduce must be callable, got {type(all_reduce).__name__}")


def _reduce(buffers: list[np.ndarray], all_reduce: AllReduce) -> list[np.ndarray]:
    """Run ``all_reduce`` on the list in place, first copying any buffer the collective
    could not safely use (not C-contiguous, read-only, or overlapping an earlier one)."""
    bufs: list[np.ndarray] = []
    for b in buffers:
        xp = array_module(b)
        if (not b.flags.c_contiguous or not is_writeable(b)
                or any(xp.may_share_memory(b, o) for o in bufs)):
            b = xp.array(b, order="C", copy=True)
        bufs.append(b)
    all_reduce(bufs)
    return bufs


def f_forward(xs: list[np.ndarray]) -> list[np.ndarray]:
    """Megatron's f forward: identity (X is already replicated on every rank)."""
    return xs


def f_backward(dxs: list[np.ndarray], all_reduce: AllReduce) -> list[np.ndarray]:
    """Megatron's f backward: all-reduce the per-rank partial gradients,
    dX = sum_t dX_t, so every rank holds the full dX. One all_reduce call; it sums
    ``dxs`` in place (after the safety copies described in the module docstring)."""
    return _reduce(dxs, all_reduce)


def g_forward(partials: list[np.ndarray], all_reduce: AllReduce) -> list[np.ndarray]:
    """Megatron's g forward: all-reduce the per-rank partial outputs, Z = sum_t Z_t.
    One all_reduce call; it sums ``partials`` in place (as :func:`f_backward`)."""
    return _reduce(partials, all_reduce)


def g_backward(dzs: list[np.ndarray]) -> list[np.ndarray]:
    """Megatron's g backward: identity (dZ is replicated; each rank uses it whole)."""
    return dzs


def column_parallel_forward(xs: list[np.ndarray], weights: list[np.ndarray],
                            biases: list[np.ndarray]) -> list[np.ndarray]:
    """Y_t = f(X) @ W_t + b_t with W = [W_1 .. W_T] split by output columns (and b with
    it). X is replicated; no communication. Y_t is rank t's slice of the columns."""
    return [x @ w + b for x, w, b in zip(f_forward(xs), weights, biases, strict=True)]


def column_parallel_backward_input(dys: list[np.ndarray], weights: list[np.ndarray],
                                   all_reduce: AllReduce) -> list[np.ndarray]:
    """dX = sum_t dY_t @ W_t^T: each rank's product is partial; f's backward sums it."""
    partial = [dy @ w.T for dy, w in zip(dys, weights, strict=True)]
    return f_backward(partial, all_reduce)


def row_parallel_forward(xs: list[np.ndarray], weights: list[np.ndarray],
                         biases: list[np.ndarray],
                         all_reduce: AllReduce) -> list[np.ndarray]:
    """Z = g(sum_t X_t @ W_t) + b with W = [W_1; ..; W_T] split by input rows and X_t
    rank t's column slice of the input. The bias is replicated and added once, after
    the reduction (adding it per rank would count it T times)."""
    partial = [x @ w for x, w in zip(xs, weights, strict=True)]
    return [z + b for z, b in zip(g_forward(partial, all_reduce), biases, strict=True)]


def row_parallel_backward_input(dzs: list[np.ndarray],
                                weights: list[np.ndarray]) -> list[np.ndarray]:
    """dX_t = g'(dZ) @ W_t^T: rank t's slice of dX, from the replicated dZ; no
    communication."""
    return [dz @ w.T for dz, w in zip(g_backward(dzs), weights, strict=True)]


def linear_backward_weight(x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One rank's weight gradients of y = x @ W + b: dW = x^T @ dy, db = sum_rows(dy).

    Column-parallel: x is the replicated input and dy the rank's output columns, giving
    the rank's column block of dW and db. Row-parallel: x is the rank's input slice and
    dy the replicated output gradient, giving the rank's row block of dW and the full
    (replicated) db."""
    return x.T @ dy, array_module(dy).sum(dy, axis=0)
