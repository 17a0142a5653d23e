"""All-reduce bandwidth over MPI, nccl-tests style: what ``python -m ringpipe.mpi allreduce``
measures (its options and job: :mod:`ringpipe.cli.ranks.allreduce`).

For each size (``--min-bytes`` to ``--max-bytes``, times ``--factor``) and algorithm
(``ring`` and ``tree`` from ringpipe's step tables, each call agreeing on its
arguments first; ``ring+persistent`` and ``tree+persistent`` through a handle that
agreed once; ``mpi`` = the library's ``MPI_Allreduce`` called directly), every rank

1. fills its buffer with :func:`ringpipe.measure.bandwidth.exact_inputs` (small integers, so
   any summation order is exact) and checks one all-reduce against
   :func:`~ringpipe.measure.bandwidth.exact_sum`: ``#wrong`` counts wrong elements on all ranks;
2. times ``--iters`` back-to-back all-reduces between two barriers, ``--reps`` times,
   in place and, with ``--out-of-place``, into a second buffer (``out=``), the cases
   taking turns within each repetition so that they see the same machine state; a
   repetition's time is the slowest rank's elapsed time / iters, and the row reports
   the best repetition.

``--timeout SECONDS`` (see :mod:`ringpipe.mpi.watchdog`) aborts a job that runs longer.

**The exchange floor** of a step-table algorithm (``--floor``): its program has R
dependent rounds (ticks: a rank cannot send round k+1's data before round k's has
arrived), so no implementation of it that drives MPI from Python can beat R times one
dependent exchange of its largest message, measured in the same repetitions as a chain
of exchanges with the ring neighbours through persistent requests (one ``Startall`` and
one ``Waitall`` each, the cheapest way mpi4py offers), with no reduction.
``MPI_Allreduce`` is not bound by it: MPICH's recursive doubling needs ⌈log2 N⌉ rounds
where the ring needs 2(N-1). The floor shows how much of a gap to ``MPI_Allreduce`` is
the algorithm's round count and how much is ringpipe's overhead per round.

algbw = S / t and busbw = algbw · 2(N-1)/N (nccl-tests ``doc/PERFORMANCE.md``). Rank 0
prints the table (``format_table``) or, with ``--json``, one JSON document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ringpipe.kernels.ops import REDUCE_UFUNCS
from ringpipe.measure.bandwidth import BandwidthRow, busbw_factor
from ringpipe.measure.timer import per_call
from ringpipe.mpi.group import ProcessGroup
from ringpipe.mpi.loader import load_mpi


def _inputs(rank: int, count: int, dtype: np.dtype) -> np.ndarray:
    """Rank ``rank``'s buffer: element i is (i + rank) mod 7, built in ``dtype`` directly
    (no int64 temporaries: the tool's memory is its buffers)."""
    return np.resize(((np.arange(7) + rank) % 7).astype(dtype), count)


def _expected(n: int, count: int, dtype: np.dtype, op: str = "sum") -> np.ndarray:
    """The exact all-reduce of every rank's :func:`_inputs`: element i is the ``op``
    (sum, max or min) over r of (i + r) mod 7, which depends on i mod 7 only."""
    cycle = REDUCE_UFUNCS[op].reduce([(np.arange(7) + r) % 7 for r in range(n)])
    return np.resize(cycle.astype(dtype), count)


#: Timed through a persistent handle (:meth:`ProcessGroup.all_reduce_init`): the
#: agreement and request set-up are paid once, as with ``MPI_Allreduce_init``.
PERSISTENT = ("ring+persistent", "tree+persistent")


def _time(group: ProcessGroup, run: Callable[[], object], iters: int,
          mpi: Any) -> float:  # noqa: ANN401 - the mpi4py module
    comm = group.comm
    with np.errstate(over="ignore", invalid="ignore"):  # repeated sums overflow; timing
        seconds = per_call(run, iters, sync=comm.Barrier)  # is unaffected
    return comm.allreduce(seconds, op=mpi.MAX)


def _raw_allreduce(comm: Any, buf: np.ndarray, in_place: bool,  # noqa: ANN401
                   mpi: Any, op: str = "sum") -> Callable[[], np.ndarray]:  # noqa: ANN401
    """``MPI_Allreduce`` on ``buf`` (in place, or into a second buffer), as the baseline:
    no argument agreement, unlike ``ProcessGroup.all_reduce(..., "mpi")``."""
    mpi_op = {"sum": mpi.SUM, "max": mpi.MAX, "min": mpi.MIN}[op]
    if in_place:
        def run() -> np.ndarray:
            comm.Allreduce(mpi.IN_PLACE, buf, op=mpi_op)
            return buf
        return run
    out = np.empty_like(buf)

    def run_out() -> np.ndarray:
        comm.Allreduce(buf, out, op=mpi_op)
        return out
    return run_out


@dataclass(frozen=True)
class Floor:
    """A step-table algorithm's exchange floor at one size (module docstring)."""

    size_bytes: int
    algorithm: str
    rounds: int
    message_bytes: int
    exchange_us: float

    @property
    def floor_us(self) -> float:
        """rounds × one dependent exchange."""
        return self.rounds * self.exchange_us


def _exchange(group: ProcessGroup, algorithm: str, count: int,
              itemsize: int) -> tuple[int, int, Callable[[], object], list]:
    """(rounds, largest message in bytes, one dependent ring-neighbour exchange of it,
    its persistent requests, for the caller to free)."""
    mpi = load_mpi()
    prog = group.program("all_reduce", algorithm, count, itemsize)
    rounds = group.comm.allreduce(len(prog.ticks), op=mpi.MAX)
    largest = max((m.hi - m.lo for t in prog.ticks for m in (*t.sends, *t.recvs)),
                  default=0)
    nbytes = group.comm.allreduce(largest, op=mpi.MAX) * itemsize
    send, recv = np.zeros(nbytes, np.uint8), np.empty(nbytes, np.uint8)
    right, left = (group.rank + 1) % group.size, (group.rank - 1) % group.size
    requests = [group.comm.Recv_init([recv, mpi.BYTE], left, 0),
                group.comm.Send_init([send, mpi.BYTE], right, 0)]
    start, wait_all = mpi.Prequest.Startall, mpi.Request.Waitall

    def exchange() -> None:
        start(requests)
        wait_all(requests)
    return rounds, nbytes, exchange, requests


def measure(group: ProcessGroup, sizes: list[int], algorithms: list[str], dtype: np.dtype,
            iters: int, reps: int, out_of_place: bool = False,
            floors: list[Floor] | None = None,
            samples: dict[tuple[int, str], list[float]] | None = None,
            op: str = "sum") -> list[BandwidthRow]:
    """Rows for every (size, algorithm, in place and, with ``out_of_place``, out of
    place), measured as the module docstring says; with a ``floors`` list, each
    step-table algorithm's exchange floor is timed in the same repetitions and
    appended to it. A ``samples`` dict receives every repetition's in-place time in
    microseconds per (size, algorithm), floors as ``"<algorithm> floor"``: repetition
    k of every case ran back to back, so ratios of paired samples cancel slow drifts
    of a shared machine. ``op``: the reduction (sum, max, min; nccl-tests' ``-o``)."""
    mpi = load_mpi()
    n, rank = group.size, group.rank
    rows = []
    modes = (False, True) if out_of_place else (True,)
    cases = [(alg, in_place) for alg in algorithms for in_place in modes
             if in_place or alg not in PERSISTENT]  # a handle is in place
    for size in sizes:
        count = size // dtype.itemsize
        want = _expected(n, count, dtype, op)
        bufs, runs, wrong, handles = {}, {}, {}, []
        for case in cases:
            alg, in_place = case
            bufs[case] = buf = _inputs(rank, count, dtype)
            if alg in PERSISTENT:
                handles.append(group.all_reduce_init(buf, alg.split("+")[0], op))
                runs[case] = handles[-1]
            elif alg == "mpi":  # the library's MPI_Allreduce itself, no agreement round
                runs[case] = _raw_allreduce(group.comm, buf, in_place, mpi, op)
            else:
                out = None if in_place else np.empty_like(buf)
                runs[case] = (lambda b=buf, a=alg, o=out: group.all_reduce(b, a, op, out=o))
            result = runs[case]()
            wrong[case] = group.comm.allreduce(int(np.count_nonzero(result != want)))
        exchanges = {}
        if floors is not None:
            for alg in dict.fromkeys(a.split("+")[0] for a in algorithms if a != "mpi"):
                exchanges[alg] = _exchange(group, alg, count, dtype.itemsize)
                runs[alg, "floor"] = exchanges[alg][2]
        times: dict[tuple, list[float]] = {case: [] for case in runs}
        for _ in range(reps):
            for case in runs:
                times[case].append(_time(group, runs[case], iters, mpi))
        best = {case: min(t) for case, t in times.items()}
        if samples is not None:
            for (alg, mode), t in times.items():
                if mode == "floor":
                    samples[size, f"{alg} floor"] = [x * 1e6 * exchanges[alg][0] for x in t]
                elif mode is True:
                    samples[size, alg] = [x * 1e6 for x in t]
        for handle in handles:
            handle.free()
        for *_, requests in exchanges.values():
            for request in requests:
                request.Free()
        for alg, (rounds, nbytes, _, _) in exchanges.items():
            floors.append(Floor(size, alg, rounds, nbytes,  # type: ignore[union-attr]
                                best[alg, "floor"] * 1e6))
        for alg, in_place in cases:
            nbytes = count * dtype.itemsize
            t = best[alg, in_place]
            algbw = nbytes / t / 1e9
            rows.append(BandwidthRow(nbytes, count, dtype.name, op, alg, t * 1e6, algbw,
                                     algbw * busbw_factor("all_reduce", n),
                                     wrong[alg, in_place], in_place))
    return rows
