"""The all-to-all's nccl-tests row and its ratio against a NumPy block transpose.

:func:`time_all_to_all` times ``ringpipe.all_to_all`` (the pairwise-exchange step table,
:mod:`ringpipe.kernels.exchange`) on N in-process ranks and returns an nccl-tests
:class:`~ringpipe.measure.bandwidth.BandwidthRow`: algbw = S / t with S the bytes one
rank sends (its whole buffer), busbw = algbw · (N-1)/N (nccl-tests
``doc/PERFORMANCE.md``, alltoall), and ``#wrong`` the elements that differ from an
independent NumPy block transpose of the inputs (integers, so any difference is an
error, not rounding).

:func:`all_to_all_vs_transpose` is the ``ringpipe bench`` row: the all-to-all's best
time over the best time of the same exchange done by NumPy alone (stack the N buffers
as an N × N grid of blocks, transpose it, copy each rank's column out: the same bytes
read and written), the two timed in alternation in one run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringpipe.collectives.all_to_all import all_to_all
from ringpipe.measure.bandwidth import BandwidthRow, busbw_factor
from ringpipe.measure.timer import best_of, best_of_each

__all__ = ["TransposeRatio", "all_to_all_vs_transpose", "block_transpose", "time_all_to_all"]


def _inputs(nranks: int, count: int, dtype: np.dtype) -> list[np.ndarray]:
    base = np.arange(count, dtype=np.int64)
    return [((base * 31 + r * 7) % 1001).astype(dtype) for r in range(nranks)]


def block_transpose(buffers: list[np.ndarray], out: list[np.ndarray]) -> None:
    """``out[r]`` = block r of every buffer, in rank order, with NumPy alone."""
    n = len(buffers)
    grid = np.stack([b.reshape(n, -1) for b in buffers])  # [src, dst, elements]
    for r, o in enumerate(out):
        o.reshape(n, -1)[...] = grid[:, r, :]


def _checked(nranks: int, size_bytes: int, dtype: np.dtype | type) -> tuple[np.dtype, int]:
    dt = np.dtype(dtype)
    unit = dt.itemsize * nranks
    if size_bytes < unit or size_bytes % unit:
        raise ValueError(f"size {size_bytes} bytes is not a positive multiple of {nranks} "
                         f"ranks × the {dt.name} element size ({dt.itemsize} bytes)")
    return dt, size_bytes // dt.itemsize


def time_all_to_all(nranks: int, size_bytes: int, backend: str = "numba",
                    dtype: np.dtype | type = np.float32, iters: int = 5) -> BandwidthRow:
    """Time an all-to-all of ``size_bytes`` per rank into ``out=`` buffers; best of
    ``iters`` runs; ``#wrong`` against :func:`block_transpose` (module docstring)."""
    dt, count = _checked(nranks, size_bytes, dtype)
    bufs = _inputs(nranks, count, dt)
    outs = [np.empty_like(b) for b in bufs]
    want = [np.empty_like(b) for b in bufs]
    block_transpose(bufs, want)
    all_to_all(bufs, backend=backend, out=outs)
    wrong = sum(int(np.count_nonzero(o != w)) for o, w in zip(outs, want, strict=True))
    best = best_of(lambda: all_to_all(bufs, backend=backend, out=outs), iters)
    algbw = count * dt.itemsize / best / 1e9
    return BandwidthRow(count * dt.itemsize, count, dt.name, "none", "pairwise", best * 1e6,
                        algbw, algbw * busbw_factor("all_to_all", nranks), wrong, False)


@dataclass(frozen=True)
class TransposeRatio:
    """The all-to-all's and the NumPy transpose's best times, from one run."""

    ranks: int
    bytes_per_rank: int
    seconds: float
    transpose_seconds: float
    wrong: int

    @property
    def ratio(self) -> float:
        """All-to-all time / NumPy block-transpose time (1.0: as fast as NumPy)."""
        return self.seconds / self.transpose_seconds

    @property
    def busbw_gbps(self) -> float:
        """The all-to-all's bus bandwidth, GB/s (nccl-tests' definition)."""
        algbw = self.bytes_per_rank / self.seconds / 1e9
        return algbw * busbw_factor("all_to_all", self.ranks)


def all_to_all_vs_transpose(ranks: int, bytes_per_rank: int, backend: str = "numba",
                            rounds: int = 5) -> TransposeRatio:
    """The bench row (module docstring): float32, out-of-place, alternating rounds."""
    dt, count = _checked(ranks, bytes_per_rank, np.float32)
    bufs = _inputs(ranks, count, dt)
    outs = [np.empty_like(b) for b in bufs]
    want = [np.empty_like(b) for b in bufs]
    block_transpose(bufs, want)
    all_to_all(bufs, backend=backend, out=outs)
    wrong = sum(int(np.count_nonzero(o != w)) for o, w in zip(outs, want, strict=True))
    t_run, t_np = best_of_each([lambda: all_to_all(bufs, backend=backend, out=outs),
                                lambda: block_transpose(bufs, want)], rounds)
    return TransposeRatio(ranks, count * dt.itemsize, t_run, t_np, wrong)
