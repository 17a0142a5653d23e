"""Bandwidth accounting and size sweeps in the style of nccl-tests.

Definitions (nccl-tests ``doc/PERFORMANCE.md``), for S bytes per rank and time t:

* algbw = S / t;
* busbw = algbw · 2(N-1)/N for all-reduce, algbw · (N-1)/N for reduce-scatter and
  all-gather (S being the full gathered size), and algbw for broadcast and reduce.
  busbw is comparable to the hardware's link bandwidth whatever N is.

Inputs are crafted as in nccl-tests so that any summation order gives an exactly
predictable result: small integers, whose sums are exact in every supported dtype, so
``#wrong`` counts real errors, not rounding.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ringpipe.collectives import all_reduce
from ringpipe.kernels.numba_exec import DEFAULT_TUNING, KernelTuning


def busbw_factor(collective: str, nranks: int) -> float:
    """busbw / algbw for ``collective`` on ``nranks`` ranks."""
    n = nranks
    factors = {"all_reduce": 2 * (n - 1) / n, "reduce_scatter": (n - 1) / n,
               "all_gather": (n - 1) / n, "broadcast": 1.0, "reduce": 1.0}
    if collective not in factors:
        raise ValueError(f"unknown collective {collective!r}")
    return factors[collective]


@dataclass(frozen=True)
class BandwidthRow:
    """One line of an nccl-tests table (bandwidths in GB/s, 1 GB = 1e9 bytes)."""

    size_bytes: int
    count: int
    dtype: str
    redop: str
    algorithm: str
    time_us: float
    algbw_gbps: float
    busbw_gbps: float
    wrong: int

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)


def format_table(rows: Sequence[BandwidthRow]) -> str:
    """The rows as nccl-tests' text table: size count type redop time algbw busbw #wrong."""
    head = (f"{'size':>12} {'count':>12} {'type':>8} {'redop':>6} {'time':>10} "
            f"{'algbw':>7} {'busbw':>7} {'#wrong':>7}")
    unit = f"{'(B)':>12} {'(elements)':>12} {'':>8} {'':>6} {'(us)':>10} {'(GB/s)':>7} " \
           f"{'(GB/s)':>7} {'':>7}"
    lines = [head, unit]
    for r in rows:
        lines.append(f"{r.size_bytes:>12} {r.count:>12} {r.dtype:>8} {r.redop:>6} "
                     f"{r.time_us:>10.1f} {r.algbw_gbps:>7.2f} {r.busbw_gbps:>7.2f} "
                     f"{r.wrong:>7}")
    return "\n".join(lines)


def exact_inputs(nranks: int, count: int, dtype: np.dtype | type) -> list[np.ndarray]:
    """Per-rank inputs whose sum is exact in any order: rank r, element i -> (r+i) % 7."""
    base = np.arange(count, dtype=np.int64)
    return [((base + r) % 7).astype(dtype) for r in range(nranks)]


def exact_sum(nranks: int, count: int, dtype: np.dtype | type) -> np.ndarray:
    """The all-reduce sum of :func:`exact_inputs`, computed in int64 then cast."""
    base = np.arange(count, dtype=np.int64)
    return sum((base + r) % 7 for r in range(nranks)).astype(dtype)


def time_all_reduce(nranks: int, size_bytes: int, algorithm: str, backend: str = "numba",
                    dtype: np.dtype | type = np.float32, iters: int = 5,
                    tuning: KernelTuning = DEFAULT_TUNING) -> BandwidthRow:
    """Time an in-place all-reduce of ``size_bytes`` per rank; best of ``iters`` runs.

    Checks the first run's result on every rank against :func:`exact_sum` (#wrong).
    """
    dt = np.dtype(dtype)
    if size_bytes < dt.itemsize or size_bytes % dt.itemsize:
        raise ValueError(f"size {size_bytes} bytes is not a positive multiple of the "
                         f"{dt.name} element size ({dt.itemsize} bytes)")
    count = size_bytes // dt.itemsize
    bufs = exact_inputs(nranks, count, dt)
    all_reduce(bufs, algorithm=algorithm, backend=backend, tuning=tuning)
    want = exact_sum(nranks, count, dt)
    wrong = sum(int(np.count_nonzero(b != want)) for b in bufs)
    best = float("inf")
    for _ in range(iters):
        start = time.perf_counter()
        all_reduce(bufs, algorithm=algorithm, backend=backend, tuning=tuning)
        best = min(best, time.perf_counter() - start)
    nbytes = count * dt.itemsize
    algbw = nbytes / best / 1e9
    return BandwidthRow(nbytes, count, dt.name, "sum", algorithm, best * 1e6, algbw,
                        algbw * busbw_factor("all_reduce", nranks), wrong)


def size_sweep(min_bytes: int, max_bytes: int, factor: int = 4) -> list[int]:
    """Sizes ``min_bytes, min_bytes*factor, ...`` up to ``max_bytes`` inclusive."""
    if min_bytes < 1 or max_bytes < min_bytes or factor < 2:
        raise ValueError(f"need 1 <= min_bytes <= max_bytes and factor >= 2, got "
                         f"{min_bytes}, {max_bytes}, {factor}")
    sizes = [min_bytes]
    while sizes[-1] * factor <= max_bytes:
        sizes.append(sizes[-1] * factor)
    return sizes
