"""Bandwidth accounting and size sweeps in the style of nccl-tests.

Definitions (nccl-tests ``doc/PERFORMANCE.md``), for S bytes per rank and time t:

* algbw = S / t;
* busbw = algbw · 2(N-1)/N for all-reduce, algbw · (N-1)/N for reduce-scatter and
  all-gather (S being the full gathered size) and for all-to-all (S being what one rank
  sends, its whole buffer), and algbw for broadcast and reduce.
  busbw is comparable to the hardware's link bandwidth whatever N is.

Inputs are crafted as in nccl-tests so that any summation order gives an exactly
predictable result: small integers, whose sums are exact in every supported dtype, so
``#wrong`` counts real errors, not rounding.

:func:`format_table` lays rows out as nccl-tests' ``all_reduce_perf`` prints them
(``src/common.cu``): ``#``-comment header lines, one line per size with the
out-of-place columns (``out=`` a separate buffer) then the in-place ones, and closing
``# Out of bounds values`` and ``# Avg bus bandwidth`` lines (the mean busbw over every
measurement in the table). Types use NCCL's names (float, double, half, int32, int64).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ringpipe.collectives.api import all_reduce
from ringpipe.kernels.numba_exec import DEFAULT_TUNING, KernelTuning
from ringpipe.measure.timer import best_of


def busbw_factor(collective: str, nranks: int) -> float:
    """busbw / algbw for ``collective`` on ``nranks`` ranks."""
    n = nranks
    factors = {"all_reduce": 2 * (n - 1) / n, "reduce_scatter": (n - 1) / n,
               "all_gather": (n - 1) / n, "broadcast": 1.0, "reduce": 1.0,
               "all_to_all": (n - 1) / n}
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
    in_place: bool = True

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)


#: NCCL's names of the dtypes (``ncclDataType_t`` as nccl-tests prints them).
NCCL_TYPE_NAMES = {"float32": "float", "float64": "double", "float16": "half",
                   "int32": "int32", "int64": "int64"}

_HALF = f"{'time':>8} {'algbw':>7} {'busbw':>7} {'#wrong':>6}"
_UNITS = f"{'(us)':>8} {'(GB/s)':>7} {'(GB/s)':>7} {'':>6}"


def _columns(row: BandwidthRow | None) -> str:
    if row is None:
        return f"{'n/a':>8} {'n/a':>7} {'n/a':>7} {'n/a':>6}"
    return (f"{row.time_us:>8.1f} {row.algbw_gbps:>7.2f} {row.busbw_gbps:>7.2f} "
            f"{row.wrong:>6}")


def format_table(rows: Sequence[BandwidthRow]) -> str:
    """The rows as nccl-tests' text table (module docstring): per size, the out-of-place
    then the in-place measurement (``n/a`` when a row has no such measurement)."""
    lead = f"{'size':>12} {'count':>12} {'type':>6} {'redop':>6} {'root':>6}"
    lines = [f"#{'':>{len(lead) - 1}} {'out-of-place':^{len(_HALF)}} {'in-place':^{len(_HALF)}}",
             "#" + f"{lead} {_HALF} {_HALF}"[1:],
             "#" + f"{'(B)':>12} {'(elements)':>12} {'':>6} {'':>6} {'':>6} {_UNITS} "
                   f"{_UNITS}"[1:]]
    pairs: dict[tuple[int, int, str, str, str], dict[bool, BandwidthRow]] = {}
    for r in rows:
        pairs.setdefault((r.size_bytes, r.count, r.dtype, r.redop, r.algorithm), {})[
            r.in_place] = r
    for (size, count, dtype, redop, _), pair in pairs.items():
        name = NCCL_TYPE_NAMES.get(dtype, dtype)
        lines.append(f"{size:>12} {count:>12} {name:>6} {redop:>6} {-1:>6} "
                     f"{_columns(pair.get(False))} {_columns(pair.get(True))}")
    wrong = sum(r.wrong for r in rows)
    average = sum(r.busbw_gbps for r in rows) / len(rows) if rows else 0.0
    lines.append(f"# Out of bounds values : {wrong} {'OK' if wrong == 0 else 'FAILED'}")
    lines.append(f"# Avg bus bandwidth    : {average:.4g}")
    return "\n".join(line.rstrip() for line in lines)


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
                    tuning: KernelTuning = DEFAULT_TUNING, *,
                    in_place: bool = True) -> BandwidthRow:
    """Time an all-reduce of ``size_bytes`` per rank; best of ``iters`` runs.

    In place (the result overwrites the inputs) or, with ``in_place=False``, into
    separate ``out=`` buffers. Checks the first run's result on every rank against
    :func:`exact_sum` (#wrong).
    """
    dt = np.dtype(dtype)
    if size_bytes < dt.itemsize or size_bytes % dt.itemsize:
        raise ValueError(f"size {size_bytes} bytes is not a positive multiple of the "
                         f"{dt.name} element size ({dt.itemsize} bytes)")
    count = size_bytes // dt.itemsize
    bufs = exact_inputs(nranks, count, dt)
    out = None if in_place else [np.empty_like(b) for b in bufs]
    all_reduce(bufs, algorithm=algorithm, backend=backend, tuning=tuning, out=out)
    want = exact_sum(nranks, count, dt)
    wrong = sum(int(np.count_nonzero(b != want)) for b in (bufs if out is None else out))
    best = best_of(lambda: all_reduce(bufs, algorithm=algorithm, backend=backend,
                                      tuning=tuning, out=out), iters)
    nbytes = count * dt.itemsize
    algbw = nbytes / best / 1e9
    return BandwidthRow(nbytes, count, dt.name, "sum", algorithm, best * 1e6, algbw,
                        algbw * busbw_factor("all_reduce", nranks), wrong, in_place)


def size_sweep(min_bytes: int, max_bytes: int, factor: int = 4) -> list[int]:
    """Sizes ``min_bytes, min_bytes*factor, ...`` up to ``max_bytes`` inclusive."""
    if min_bytes < 1 or max_bytes < min_bytes or factor < 2:
        raise ValueError(f"need 1 <= min_bytes <= max_bytes and factor >= 2, got "
                         f"{min_bytes}, {max_bytes}, {factor}")
    sizes = [min_bytes]
    while sizes[-1] * factor <= max_bytes:
        sizes.append(sizes[-1] * factor)
    return sizes
