"""Rank serving layouts by goodput, and explain the winner.

DistServe (Zhong et al., OSDI'24) measures a serving system by its *goodput*: the
largest request rate at which the latency targets still hold. Here a rate is a Poisson
rate of the load's requests (a trace is stretched or squeezed in time to it) and the
targets hold when the chosen percentile of TTFT and of ITL meet them (:class:`~ringpipe.
cost.inference.serving.Slo`). :func:`goodput` finds it by doubling then halving the
interval, in log space, with the simulator (:func:`~ringpipe.cost.inference.serving.
simulate`), up to the layout's capacity (:func:`capacity`: with finitely many requests a
huge rate is one burst, which a loose target may survive, but no rate above what the layout
serves is sustained); without targets every request is good and the goodput is the requests
per second achieved at the operating point.

:func:`rank` simulates every tp × pp × dp layout of the cluster's GPUs
(:func:`~ringpipe.cost.inference.search.layouts`) at the operating point (the load as
given: a rate, a concurrency or a trace) and by goodput, best first;
:meth:`ServingSearch.explanation` compares the winner with the best layout of the other
kind in one sentence.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ringpipe.cost.hardware.cluster import Cluster
from ringpipe.cost.inference.model import InferenceModel
from ringpipe.cost.inference.search import kind, label, layouts
from ringpipe.cost.inference.serving import (
    DEFAULT_KNOBS,
    NO_SLO,
    Knobs,
    Load,
    ServingStats,
    Slo,
    simulate,
)
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig

__all__ = ["ServingCandidate", "ServingSearch", "capacity", "goodput", "rank"]

#: The bisection stops once the bracket [lo, hi] is this narrow (hi / lo).
RESOLUTION = 1.04


def capacity(im: InferenceModel, layout: Mesh, load: Load, knobs: Knobs = DEFAULT_KNOBS,
             dtype: str = "bf16") -> float:
    """Requests per second ``layout`` serves when the load's requests all arrive at once
    (0 when it does not fit): no rate above it is sustained."""
    stats = simulate(im, layout, load.at_rate(1e9), knobs, dtype)
    return 0.0 if stats is None else stats.requests_per_s


def goodput(im: InferenceModel, layout: Mesh, load: Load, slo: Slo, knobs: Knobs = DEFAULT_KNOBS,
            dtype: str = "bf16", start: float = 1.0) -> float:
    """The largest Poisson rate (requests/s), at most the layout's :func:`capacity`, at which
    ``layout`` meets ``slo`` (module docstring), searched from ``start``; 0 when it misses
    even one request alone."""
    def meets(rate: float) -> bool:
        stats = simulate(im, layout, load.at_rate(rate), knobs, dtype)
        return stats is not None and slo.meets(stats)

    alone = simulate(im, layout, dataclasses.replace(load.at_rate(1.0), requests=1), knobs,
                     dtype)
    if alone is None or not slo.meets(alone):  # missed even with nothing else running
        return 0.0
    cap = capacity(im, layout, load, knobs, dtype)
    lo = hi = min(start, cap)
    if meets(lo):
        if lo == cap:
            return cap
        while True:
            hi = min(2 * hi, cap)
            if not meets(hi):
                break
            if hi == cap:
                return cap
            lo = hi
    else:
        for _ in range(10):
            lo /= 2
            if meets(lo):
                break
            hi = lo
        else:
            return 0.0
    while hi / lo > RESOLUTION:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if meets(mid) else (lo, mid)
    return lo


@dataclass(frozen=True)
class ServingCandidate:
    """A layout at the operating point (``stats``; None when it does not fit) and its
    goodput in requests per second."""

    layout: Mesh
    stats: ServingStats | None
    goodput_rps: float
    meets_slo: bool

    def to_dict(self, percentile: float) -> dict[str, object]:
        """The layout, every latency percentile (50, 90, 99 and the chosen one), the
        rates, the goodput and whether it fits and meets the SLOs."""
        lay = self.layout
        out: dict[str, object] = {"tp": lay.tp, "pp": lay.pp, "dp": lay.dp,
                                  "fits": self.stats is not None, "meets_slo": self.meets_slo,
                                  "goodput_requests_per_s": self.goodput_rps}
        if self.stats is not None:
            qs = sorted({50.0, 90.0, 99.0, float(percentile)})
            out.update(self.stats.to_dict(qs))
            out.update({"kv_blocks": self.stats.num_blocks,
                        "mean_batch": self.stats.mean_batch})
        return out


@dataclass(frozen=True)
class ServingSearch:
    """Candidates best first: by goodput, then the percentile's end-to-end latency."""

    model: ModelConfig
    cluster: Cluster
    load: Load
    slo: Slo
    knobs: Knobs
    dtype: str
    candidates: tuple[ServingCandidate, ...]

    @property
    def best(self) -> ServingCandidate | None:
        """The winner: fits and has a goodput above 0."""
        first = self.candidates[0] if self.candidates else None
        return first if first is not None and first.goodput_rps > 0 else None

    def operating_point(self) -> str:
        """The load in words: "4 requests/s", "8 clients" or "trace FILE"."""
        ld = self.load
        if ld.rate is not None:
            return f"{ld.rate:g} requests/s"
        if ld.concurrency is not None:
            return f"concurrency {ld.concurrency}"
        return f"the trace's {len(ld.trace or ())} requests"

    def explanation(self) -> str:
        """One sentence: the winner against the best layout of the other kind."""
        best = self.best
        if best is None:
            return "no layout fits and meets the SLOs at any rate"
        wk = kind(best.layout)
        others = [c for c in self.candidates if c.stats is not None and kind(c.layout) != wk]
        opposite = {"TP-heavy": "PP-heavy", "PP-heavy": "TP-heavy"}.get(wk)
        rival = next((c for c in others if kind(c.layout) == opposite),
                     others[0] if others else None)
        if rival is None:
            return f"{label(best.layout)} ({wk}) wins; no layout of another kind fits"
        q, w, r = self.slo.percentile, best.stats, rival.stats
        assert w is not None and r is not None
        targets = " and ".join(f"{name} ≤ {value * 1e3:g} ms" for name, value in (
            ("TTFT", self.slo.ttft_s), ("ITL", self.slo.itl_s)) if value is not None)
        measure = (f"{best.goodput_rps:.2f} vs {rival.goodput_rps:.2f} requests/s of goodput "
                   f"(p{q:g} {targets})" if self.slo.any else
                   f"{best.goodput_rps:.2f} vs {rival.goodput_rps:.2f} requests/s")
        return (f"{label(best.layout)} ({wk}) beats {label(rival.layout)} ({kind(rival.layout)})"
                f" at {measure}: at {self.operating_point()} its p{q:g} TTFT is "
                f"{w.pct('ttft', q) * 1e3:.0f} vs {r.pct('ttft', q) * 1e3:.0f} ms and p{q:g} "
                f"ITL {w.pct('itl', q) * 1e3:.1f} vs {r.pct('itl', q) * 1e3:.1f} ms, because "
                f"{_pace(best)} while {_pace(rival)}.")


def _pace(c: ServingCandidate) -> str:
    """How fast a layout turns its batch: replicas × requests per step ÷ step time."""
    s = c.stats
    assert s is not None
    n = c.layout.dp
    who = f"{label(c.layout)}'s {n} replicas each decode" if n > 1 else \
        f"{label(c.layout)} decodes"
    return f"{who} {s.mean_batch:.1f} requests per {s.pct('itl', 50) * 1e3:.1f} ms step"


def rank(model: ModelConfig, cluster: Cluster, load: Load, slo: Slo = NO_SLO,
         knobs: Knobs = DEFAULT_KNOBS, dtype: str = "bf16",
         pins: dict[str, int | None] | None = None) -> ServingSearch:
    """Simulate and rank every layout of the cluster's GPUs (module docstring); ``pins``
    such as ``{"tp": 8}`` keep only the layouts with those sizes."""
    im = InferenceModel(model, cluster)
    chosen = [lay for lay in layouts(model, cluster.world)
              if all(getattr(lay, k) == v for k, v in (pins or {}).items() if v is not None)]
    if not chosen:
        raise ValueError(f"no layout of {cluster.world} GPUs splits {model.name} with "
                         f"{ {k: v for k, v in (pins or {}).items() if v is not None} }")
    found = []
    for layout in chosen:
        stats = simulate(im, layout, load, knobs, dtype)
        if stats is None:
            found.append(ServingCandidate(layout, None, 0.0, False))
            continue
        ok = slo.meets(stats)
        good = (goodput(im, layout, load, slo, knobs, dtype, start=stats.requests_per_s)
                if slo.any else stats.requests_per_s)
        found.append(ServingCandidate(layout, stats, good, ok))

    def order(c: ServingCandidate) -> tuple:
        e2e = c.stats.pct("e2e", slo.percentile) if c.stats is not None else math.inf
        return (c.stats is None, -c.goodput_rps, e2e)

    return ServingSearch(model, cluster, load, slo, knobs, dtype, tuple(sorted(found, key=order)))
