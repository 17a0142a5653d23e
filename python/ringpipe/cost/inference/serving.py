"""The serving simulator: continuous batching on a layout under traffic, priced per iteration.

:func:`simulate` runs the *same* scheduler as the CPU runtime
(:class:`~ringpipe.runtime.batching.policy.BatchingPolicy` in the loop of
:func:`~ringpipe.runtime.batching.engine.serve`), each iteration priced by the inference
cost model (:class:`~ringpipe.cost.inference.iteration.IterationPricer`), on every DP
replica of a layout (requests routed round robin in arrival order; closed-loop clients
round robin). Its :class:`ServingStats` carry every request's time to first token (TTFT),
inter-token latency (ITL: (E2E - TTFT)/(K - 1), its mean gap between tokens, as AIPerf and
genai-perf define it; vLLM's benchmark calls it TPOT) and end-to-end latency (E2E), their
percentiles over requests, and the rates:

* ``throughput_tokens_per_s``: output tokens / makespan (first arrival to last token);
* ``requests_per_s``: requests / makespan.

A :class:`Slo` says whether a chosen percentile of TTFT and of ITL meets its target; the
largest Poisson rate at which it does is the goodput (:mod:`.goodput`).

Each replica's KV pool is what 90% of its GPUs' memory leaves after the weights
(:func:`~ringpipe.cost.inference.iteration.kv_blocks`), in blocks of ``block_size``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ringpipe.cost.inference.iteration import IterationPricer, kv_blocks
from ringpipe.cost.inference.model import InferenceModel
from ringpipe.cost.inference.traffic import clients, poisson
from ringpipe.mesh import Mesh
from ringpipe.runtime.batching.engine import ClosedLoop, OpenLoop, ServingTrace, round_robin, serve
from ringpipe.runtime.batching.policy import BatchingPolicy, Request
from ringpipe.validation import check_int, check_real

__all__ = ["DEFAULT_KNOBS", "METRICS", "NO_SLO", "Knobs", "Load", "ServingStats", "Slo",
           "simulate"]

#: The latencies the stats report, each at every percentile asked.
METRICS = ("ttft", "itl", "e2e")


@dataclass(frozen=True)
class Knobs:
    """The scheduler's knobs but the pool size, which each layout's memory decides
    (:class:`~ringpipe.runtime.batching.policy.BatchingPolicy`)."""

    block_size: int = 16
    max_batch: int = 256
    token_budget: int = 8192
    chunked_prefill: bool = True

    def policy(self, num_blocks: int) -> BatchingPolicy:
        """The policy with a pool of ``num_blocks`` blocks."""
        return BatchingPolicy(num_blocks, self.block_size, self.max_batch, self.token_budget,
                              self.chunked_prefill)


#: vLLM-like defaults: blocks of 16, 256 requests, 8192 positions per iteration, chunks.
DEFAULT_KNOBS = Knobs()


@dataclass(frozen=True)
class Load:
    """The traffic: ``requests`` requests of ``isl`` prompt and ``osl`` output tokens,
    arriving at a Poisson ``rate`` per second, or from ``concurrency`` closed-loop clients
    (``requests`` counts their first, warm-up, requests too), or as listed in ``trace``
    (exactly one of the three)."""

    isl: int
    osl: int
    requests: int = 200
    rate: float | None = None
    concurrency: int | None = None
    trace: tuple[Request, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("Load.isl", self.isl)
        check_int("Load.osl", self.osl)
        check_int("Load.requests", self.requests)
        given = [k for k in ("rate", "concurrency", "trace") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"Load: give exactly one of rate, concurrency and trace, got "
                             f"{', '.join(given) or 'none'}")
        if self.rate is not None:
            check_real("Load.rate", self.rate, positive=True)
        if self.concurrency is not None:
            check_int("Load.concurrency", self.concurrency, 1, self.requests - 1)

    @property
    def warmup(self) -> int:
        """Requests left out of the statistics: with C closed-loop clients, each client's
        first one (they all start at once, a herd no steady state has; AIPerf's and
        genai-perf's warm-up requests), so request ids below C; none in an open loop."""
        return self.concurrency or 0

    def at_rate(self, rate: float) -> Load:
        """The same requests at a mean ``rate`` per second: Poisson arrivals, or the trace's
        arrival times scaled so that its N requests span (N - 1) / rate seconds."""
        if self.trace is None:
            return Load(self.isl, self.osl, self.requests, rate=rate, seed=self.seed)
        first = min(r.arrival_s for r in self.trace)
        span = max(r.arrival_s for r in self.trace) - first
        scale = (len(self.trace) - 1) / rate / span if span > 0 else 0.0
        return Load(self.isl, self.osl, self.requests, seed=self.seed, trace=tuple(
            dataclasses.replace(r, arrival_s=(r.arrival_s - first) * scale)
            for r in self.trace))

    def sources(self, dp: int) -> list[OpenLoop | ClosedLoop]:
        """One arrival source per DP replica."""
        if self.concurrency is not None:
            per = round_robin(range(self.concurrency), dp, key=lambda c: c)
            everyone = clients(self.concurrency, self.requests, self.isl, self.osl)
            return [ClosedLoop([everyone[c] for c in cs]) for cs in per]
        reqs = list(self.trace) if self.trace is not None else poisson(
            self.rate, self.requests, self.isl, self.osl, self.seed)  # type: ignore[arg-type]
        return [OpenLoop(rs) for rs in round_robin(reqs, dp)]


@dataclass(frozen=True)
class Slo:
    """Targets for the ``percentile``-th TTFT and ITL, in seconds (None: no target)."""

    ttft_s: float | None = None
    itl_s: float | None = None
    percentile: float = 99.0

    def __post_init__(self) -> None:
        check_real("Slo.percentile", self.percentile, 0.0, 100.0)
        for name in ("ttft_s", "itl_s"):
            if getattr(self, name) is not None:
                check_real(f"Slo.{name}", getattr(self, name), positive=True)

    @property
    def any(self) -> bool:
        """Whether there is a target at all."""
        return self.ttft_s is not None or self.itl_s is not None

    def meets(self, stats: ServingStats) -> bool:
        """Whether ``stats`` meet both targets at the percentile."""
        q = self.percentile
        return ((self.ttft_s is None or stats.pct("ttft", q) <= self.ttft_s)
                and (self.itl_s is None or stats.pct("itl", q) <= self.itl_s))


#: No latency target: every request is good.
NO_SLO = Slo()


@dataclass(frozen=True)
class ServingStats:
    """One simulation of a layout under a load: every latency, the rates, the traces."""

    layout: Mesh
    load: Load
    num_blocks: int
    ttft_s: tuple[float, ...]
    itl_s: tuple[float, ...]
    e2e_s: tuple[float, ...]
    output_tokens: int
    makespan_s: float
    traces: tuple[ServingTrace, ...]

    def pct(self, metric: str, q: float) -> float:
        """The ``q``-th percentile of ``metric`` (one of :data:`METRICS`), seconds (linear
        interpolation, NumPy's default; 0 for ITL when every request has one token)."""
        values = getattr(self, f"{metric}_s")
        return float(np.percentile(values, q)) if values else 0.0

    def mean(self, metric: str) -> float:
        """The mean of ``metric`` (one of :data:`METRICS`), seconds (AIPerf's "avg")."""
        values = getattr(self, f"{metric}_s")
        return float(np.mean(values)) if values else 0.0

    @property
    def throughput_tokens_per_s(self) -> float:
        """Output tokens per second over the makespan."""
        return self.output_tokens / self.makespan_s

    @property
    def requests_per_s(self) -> float:
        """Requests per second over the makespan."""
        return len(self.e2e_s) / self.makespan_s

    @property
    def mean_batch(self) -> float:
        """Requests per iteration, averaged over iterations."""
        its = [t.iteration for trace in self.traces for t in trace.iterations]
        return sum(len(it.segments) for it in its) / len(its)

    def to_dict(self, percentiles: Sequence[float] = (50, 90, 99)) -> dict[str, float]:
        """``ttft_p50_s``... for each metric and percentile, then the rates."""
        out = {f"{m}_p{q:g}_s": self.pct(m, q) for m in METRICS for q in percentiles}
        return {**out, "throughput_tokens_per_s": self.throughput_tokens_per_s,
                "requests_per_s": self.requests_per_s}


def simulate(im: InferenceModel, layout: Mesh, load: Load, knobs: Knobs = DEFAULT_KNOBS,
             dtype: str = "bf16") -> ServingStats | None:
    """Serve ``load`` on every replica of ``layout`` (module docstring); None when the
    layout's KV pool cannot hold one request (it does not fit)."""
    blocks = kv_blocks(im, layout, dtype, knobs.block_size)
    positions = load.isl + load.osl - 1 if load.trace is None else max(
        r.positions for r in load.trace)
    if blocks * knobs.block_size < positions:
        return None
    policy = knobs.policy(blocks)
    pricer = IterationPricer(im, layout, dtype)
    traces = tuple(serve(policy, source, pricer, layout.pp) for source in load.sources(layout.dp))
    records = [r for t in traces for r in t.requests if r.request.id >= load.warmup]
    first = min(r.request.arrival_s for r in records)
    last = max(r.token_s[-1] for r in records)
    return ServingStats(layout, load, blocks, tuple(r.ttft_s for r in records),
                        tuple(r.itl_s for r in records if r.itl_s is not None),
                        tuple(r.e2e_s for r in records),
                        sum(r.request.output_len for r in records), last - first, traces)
