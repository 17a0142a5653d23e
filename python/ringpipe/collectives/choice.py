"""Choosing a collective's algorithm: the one rule (:func:`choose`), and what a collective
costs on THIS machine, for in-process ranks (one host, shared memory).

:func:`ringpipe.all_reduce` with ``algorithm="auto"`` runs its ranks as arrays in one
process, so the GPU-cluster α-β model of :mod:`ringpipe.cost` does not apply: there is
no link between ranks, only the host's memory system. This module sits below both
:mod:`ringpipe.collectives.api` and :mod:`ringpipe.cost` and imports neither.

Model (a frozen :class:`HostModel`, passed explicitly; no global state). For the step
table T that would run (:func:`ringpipe.kernels.registry.step_table`, N ranks of S
bytes each),

    t(T) = call_overhead + transfers(T) · transfer_overhead + 2·N·S / memory_bandwidth

* ``2·N·S``: the tile-fused executors read every rank's input and write every rank's
  output once (:mod:`ringpipe.kernels.numba_exec`), whatever the algorithm, so ring and
  tree move the same bytes on a host;
* ``transfers(T)``: rows of the table, each one loop iteration of the executor: ring
  2·N·(N-1), double binary tree 4·(N-1) (per pipeline chunk);
* ``call_overhead``: argument checks, the table lookup and the kernel dispatch.

The defaults were measured on the 2-core development VM (``ringpipe.all_reduce`` on
8 float32 ranks: about 20 µs for 256 B, about 32 GB/s effective over 2·N·S bytes at
16 MiB per rank, ring and tree within 7% of each other); pass your own
:class:`HostModel` to :func:`host_all_reduce_time` / :func:`choose_host_algorithm` for
another machine. Because both algorithms are memory-bound at the same byte count, a
prediction within ``tie_tolerance`` of the default algorithm keeps the default (ring).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ringpipe.kernels.registry import ALGORITHMS, step_table
from ringpipe.validation import check_int, check_real

__all__ = ["DEFAULT_HOST", "HostCost", "HostModel", "PricedAlgorithm", "choose",
           "choose_host_algorithm",
           "host_collective_time"]


def _positive(name: str, value: object, allow_zero: bool = False) -> float:
    return check_real(f"HostModel.{name}", value, 0.0, positive=not allow_zero)


@dataclass(frozen=True)
class HostModel:
    """One host's memory bandwidth (bytes/s) and fixed costs (s); see module docstring."""

    memory_bandwidth: float = 32e9
    call_overhead: float = 20e-6
    transfer_overhead: float = 20e-9
    tie_tolerance: float = 0.02
    default_algorithm: str = "ring"

    def __post_init__(self) -> None:
        _positive("memory_bandwidth", self.memory_bandwidth)
        for name in ("call_overhead", "transfer_overhead", "tie_tolerance"):
            _positive(name, getattr(self, name), allow_zero=True)


#: The documented defaults (measured on the development VM, module docstring).
DEFAULT_HOST = HostModel()


@dataclass(frozen=True)
class HostCost:
    """One priced in-process collective: ``time`` = ``fixed_time`` + bandwidth part."""

    algorithm: str
    time: float
    fixed_time: float
    transfers: int
    nsteps: int


def host_collective_time(collective: str, algorithm: str, nbytes: int, nranks: int,
                         host: HostModel = DEFAULT_HOST) -> HostCost:
    """Predicted time of ``collective`` with ``algorithm`` on ``nranks`` in-process ranks
    of ``nbytes`` each (module docstring)."""
    if not isinstance(host, HostModel):
        raise TypeError(f"host must be a HostModel, got {type(host).__name__}")
    nbytes = check_int("nbytes", nbytes, 0)
    nranks = check_int("nranks", nranks)
    table = step_table(collective, algorithm, nranks)
    transfers = int(table.step.size)
    fixed = host.call_overhead + transfers * host.transfer_overhead
    moved = 2.0 * nranks * nbytes / host.memory_bandwidth
    return HostCost(algorithm, fixed + moved, fixed, transfers, int(table.nsteps))


@dataclass(frozen=True)
class PricedAlgorithm:
    """One algorithm priced by some cost model: ``time`` seconds in all, of which
    ``fixed_time`` does not grow with the message (latency); ``detail`` is what the
    model adds to the reason (e.g. ``"14 steps, K=4"``)."""

    algorithm: str
    time: float
    fixed_time: float
    detail: str = ""


def choose(collective: str, priced: Sequence[PricedAlgorithm], what: str,
           model: str = "", default: str | None = None,
           tie_tolerance: float = 0.0) -> tuple[str, str]:
    """The one rule that picks an algorithm from priced candidates, and says why.

    The cheapest wins; with ``default`` given, the default is kept when within
    ``tie_tolerance`` of the cheapest (both algorithms move the same bytes on a host, so
    a 2% difference is noise). ``what`` describes the message and the ranks (e.g. ``"1.0
    MiB on 8 ranks inside one node"``); ``model`` names the cost model. Used for
    in-process ranks (:func:`choose_host_algorithm`) and for a cluster's links
    (:func:`ringpipe.cost.hardware.collectives.choose_algorithm`).
    """
    if not priced:
        raise ValueError(f"no algorithm can run {collective}")
    best = min(priced, key=lambda c: c.time)
    kept = False
    if default is not None:
        fallback = next((c for c in priced if c.algorithm == default), None)
        if fallback is not None and fallback.time <= best.time * (1 + tie_tolerance):
            kept, best = best is not fallback, fallback
    model = f" {model}" if model else ""
    if len(priced) == 1:
        return best.algorithm, (f"{best.algorithm}: the only {collective} algorithm "
                                f"({best.time * 1e6:.1f} µs for {what}{model})")
    others = ", ".join(f"{c.algorithm} {c.time * 1e6:.1f} µs" for c in priced if c is not best)
    bound = "latency" if best.fixed_time >= best.time / 2 else "bandwidth"
    detail = f"; {best.detail}" if best.detail else ""
    why = (f"{best.algorithm}: {best.time * 1e6:.1f} µs vs {others} for {what} "
           f"({bound}-bound{detail}){model}")
    if kept:
        why += f"; within {tie_tolerance:.0%} of the fastest, so the default is kept"
    return best.algorithm, why


def choose_host_algorithm(collective: str, nbytes: int, nranks: int,
                          host: HostModel = DEFAULT_HOST) -> tuple[str, str]:
    """The cheapest algorithm for in-process ranks on ``host``, and a one-line reason
    (:func:`choose` with the host model's costs)."""
    if collective not in ALGORITHMS:
        raise ValueError(f"unknown collective {collective!r}; choose one of "
                         f"{', '.join(map(repr, ALGORITHMS))}")
    priced, refused = [], []
    for algorithm in ALGORITHMS[collective]:
        try:  # a table too large to build (a ring over thousands of ranks) is no candidate
            cost = host_collective_time(collective, algorithm, nbytes, nranks, host)
        except ValueError as exc:
            refused.append(str(exc))
            continue
        priced.append(PricedAlgorithm(algorithm, cost.time, cost.fixed_time))
    if not priced:
        raise ValueError(f"no algorithm can run {collective} over {nranks} ranks: "
                         + "; ".join(refused))
    model = (f"by the host model of this machine ({host.memory_bandwidth / 1e9:g} GB/s "
             f"memory, {host.call_overhead * 1e6:g} µs per call, "
             f"{host.transfer_overhead * 1e9:g} ns per table transfer; "
             "ringpipe.collectives.choice)")
    return choose(collective, priced, f"{nbytes} B on {nranks} in-process ranks", model,
                  host.default_algorithm, host.tie_tolerance)


@lru_cache(maxsize=1024)
def _auto_choice(collective: str, nbytes: int, nranks: int, host: HostModel) -> tuple[str, str]:
    return choose_host_algorithm(collective, nbytes, nranks, host)


def auto_algorithm(collective: str, *sizes: Any, host: HostModel = DEFAULT_HOST
                   ) -> tuple[str, str]:
    """The algorithm ``algorithm="auto"`` runs for ``collective`` on in-process ranks, and
    why. ``sizes`` is the rank buffers themselves, ``(nbytes, nranks)`` or ``(count,
    itemsize, nranks)``. The choice comes from a cost model of THIS machine
    (:class:`ringpipe.collectives.choice.HostModel`: memory bandwidth, per-call and per-transfer
    overhead; documented defaults, or pass ``host``), not from a GPU cluster's links: for
    cluster-level choices use :func:`ringpipe.cost.choose_algorithm` with a cluster."""
    if len(sizes) == 1:
        bufs = sizes[0]
        if not isinstance(bufs, (list, tuple)) or not bufs:
            raise TypeError("auto_algorithm: give the rank buffers (a non-empty list), "
                            "(nbytes, nranks) or (count, itemsize, nranks)")
        nbytes, nranks = int(bufs[0].nbytes), len(bufs)
    elif len(sizes) == 2:
        nbytes = check_int("auto_algorithm: nbytes", sizes[0], 0)
        nranks = check_int("auto_algorithm: nranks", sizes[1])
    elif len(sizes) == 3:
        nbytes = (check_int("auto_algorithm: count", sizes[0], 0)
                  * check_int("auto_algorithm: itemsize", sizes[1]))
        nranks = check_int("auto_algorithm: nranks", sizes[2])
    else:
        raise TypeError("auto_algorithm: give the rank buffers, (nbytes, nranks) or "
                        f"(count, itemsize, nranks); got {len(sizes)} size arguments")
    return _auto_choice(collective, nbytes, nranks, host)
