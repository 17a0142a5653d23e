"""α-β of point-to-point transfers and of all-reduce, fitted, and turned into step links.

**Fit** (Hockney 1994): a transfer of n bytes costs t(n) = α + β·n. :func:`fit_alpha_beta`
solves it by least squares on the relative error (small and large messages count
alike), clipping a negative α or β to 0 and refitting the other.

**All-reduce as a step table.** The cost model prices an all-reduce of S bytes on N
ranks by walking its step table (:mod:`ringpipe.cost.hardware.collectives`): with a link of
per-step latency a and bandwidth 1/b, t(S) = steps·a + c·S·b, where ``steps`` and the
volume factor c come from the table (ring: 2(N-1) and 2(N-1)/N). A measured all-reduce
fit t(S) = α_N + β_N·S therefore gives the *step link* a = α_N / steps,
b = β_N / c that makes the table model reproduce the measurement
(:func:`step_link`); ``ringpipe calibrate`` stores one per (runtime, algorithm, N).

**In-process measurements** use the runtimes' own pieces: a point-to-point transfer is
what :class:`ringpipe.runtime.inproc.QueueTransport` does per message (copy the payload
into the channel, pop it on the receiving side), and an all-reduce is
:func:`ringpipe.all_reduce` over N buffers with the runtime's kernel tuning, called
through the runtime's counting wrapper (:class:`ringpipe.runtime.groups.CountedAllReduce`); both are
timed in CPU time, like compute (:func:`ringpipe.measure.timer.cpu_time`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from ringpipe.collectives.api import all_reduce
from ringpipe.cost.executable.pricer import HOST_KERNELS
from ringpipe.cost.hardware.cluster import Cluster, Link
from ringpipe.cost.hardware.collectives import CollectiveModel
from ringpipe.measure.timer import Budget, cpu_time

QUICK_BYTES = (1 << 10, 1 << 16, 1 << 20)
FULL_BYTES = (1 << 8, 1 << 12, 1 << 16, 1 << 18, 1 << 20, 1 << 22)


@dataclass(frozen=True)
class AlphaBeta:
    """t(n) = alpha + beta·n seconds for n bytes, with the points it was fitted on."""

    alpha: float
    beta: float
    sizes: tuple[int, ...] = ()
    seconds: tuple[float, ...] = ()
    #: the least-squares β came out 0 (times did not grow with size: noise or an
    #: oversubscribed machine); β is then bounded by the largest message instead
    degenerate: bool = False

    def time(self, nbytes: float) -> float:
        """Predicted seconds for ``nbytes``."""
        return self.alpha + self.beta * nbytes

    @property
    def bandwidth(self) -> float:
        """1/β in bytes/s (inf when β is 0)."""
        return 1.0 / self.beta if self.beta > 0 else float("inf")


def fit_alpha_beta(sizes: Sequence[float], seconds: Sequence[float]) -> AlphaBeta:
    """Least-squares α, β ≥ 0 through (bytes, seconds) points (module docstring)."""
    if len(sizes) != len(seconds) or len(sizes) < 2:
        raise ValueError("fit_alpha_beta: need at least 2 (size, seconds) points of equal "
                         f"count, got {len(sizes)} and {len(seconds)}")
    n = np.asarray(sizes, dtype=float)
    t = np.asarray(seconds, dtype=float)
    if (n < 0).any() or not np.isfinite(t).all() or (t <= 0).any():
        raise ValueError("fit_alpha_beta: sizes must be >= 0 and seconds finite and > 0")
    a = np.column_stack([np.ones_like(n), n]) / t[:, None]
    (alpha, beta), *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
    if alpha < 0:
        alpha, beta = 0.0, float(np.sum(n / t) / np.sum((n / t) ** 2))
    elif beta < 0:
        alpha, beta = float(np.sum(1 / t) / np.sum(1 / t**2)), 0.0
    degenerate = beta <= 0 and n.max() > 0
    if degenerate:  # an infinite bandwidth would mislead every prediction downstream:
        # bound it by the largest message, whose whole time is taken as transfer
        alpha, beta = float(t.min()), float(t[np.argmax(n)] / n.max())
    return AlphaBeta(float(alpha), float(beta), tuple(int(x) for x in n), tuple(map(float, t)),
                     bool(degenerate))


def host_cluster(ranks: int, link: Link, *, peak_flops: float = 1e9,
                 memory_bytes: float = 1e9, memory_bandwidth: float = 1e9,
                 name: str = "host") -> Cluster:
    """One node of ``ranks`` CPU ranks joined by ``link`` (no tile/wave quantisation:
    one "SM", 1×1 tiles; no launch floor, the executable model adds call overhead)."""
    return Cluster(name, 1, max(1, ranks), peak_flops, memory_bytes, memory_bandwidth,
                   link, link, 1.0, HOST_KERNELS)


def table_factors(algorithm: str, ranks: int) -> tuple[float, float]:
    """(steps, volume factor c) of the all-reduce table: t(S) = steps·a + c·S·b."""
    unit = CollectiveModel(host_cluster(ranks, Link(1.0, 0.0)))
    c = unit.cost("all_reduce", algorithm, 1.0, ranks, pipeline_chunks=1).time
    steps = CollectiveModel(host_cluster(ranks, Link(1e300, 1.0))).cost(
        "all_reduce", algorithm, 1.0, ranks, pipeline_chunks=1).time
    return float(round(steps)), float(c)


def step_link(fit: AlphaBeta, algorithm: str, ranks: int) -> Link:
    """The per-step link that makes the table model reproduce ``fit`` (module doc)."""
    steps, c = table_factors(algorithm, ranks)
    beta = fit.beta / c if c > 0 else 0.0
    return Link(1.0 / beta if beta > 0 else 1e300, fit.alpha / steps if steps else 0.0)


def measure_inproc_p2p(sizes: Sequence[int], budget: Budget) -> AlphaBeta:
    """One in-process message per size: a payload copy into a channel and its pop."""
    seconds = []
    for nbytes in sizes:
        payload = [np.ones(max(1, nbytes // 8))]
        channel: dict = {}

        def send_recv(payload: list = payload, channel: dict = channel) -> None:
            channel[("F", 1, 0)] = [x.copy() for x in payload]
            channel.pop(("F", 1, 0))

        seconds.append(cpu_time(send_recv, budget))
    return fit_alpha_beta(sizes, seconds)


def measure_inproc_allreduce(algorithm: str, ranks: int, sizes: Sequence[int],
                             backend: str, budget: Budget) -> AlphaBeta:
    """:func:`ringpipe.all_reduce` of ``ranks`` in-process buffers, per size."""
    from ringpipe.runtime.groups import CountedAllReduce, RankTally
    from ringpipe.runtime.inproc import RUNTIME_TUNING

    reduce = CountedAllReduce(partial(all_reduce, algorithm=algorithm, backend=backend,
                                      tuning=RUNTIME_TUNING), algorithm, "tp", ranks,
                              range(ranks), [RankTally() for _ in range(ranks)])
    seconds = []
    for nbytes in sizes:
        bufs = [np.ones(max(ranks, nbytes // 8)) for _ in range(ranks)]
        seconds.append(cpu_time(partial(reduce, bufs), budget))
    return fit_alpha_beta(sizes, seconds)
