"""α-β fits of nccl-tests runs, and the link of each tier (inside a node, across nodes)
they imply for ringpipe's step-table cost model.

**The fit.** A run's out-of-place times t(S) are fitted with t = α + β·S (Hockney). β,
the cost of a byte, is the slope of the least-squares line through the
bandwidth-bound sizes, the largest sixteenth of the range (S >= S_max / 16, at least the
two largest sizes); α, the latency floor, is the smallest time of the run when it
measured sizes under 1 MiB (there t is flat), else that line's intercept, clipped at 0.
The line therefore reproduces the large sizes, where bandwidth is decided, and the
floor, where latency is; in between
NCCL switches protocol and algorithm, which is why the measured table is kept beside
the fit (:mod:`ringpipe.cost.hardware.measured`). ``fitted_busbw_gbs`` is the bus
bandwidth the line gives at the largest size, f·S/(α + β·S) with nccl-tests' factor f
(:func:`~ringpipe.measure.nccltests.parse.busbw_factor`).

**Tiers.** ringpipe prices a collective on its step table (ring: 2(N-1) steps for an
all-reduce, N-1 for all-gather and reduce-scatter, each moving S/N per rank per step;
:mod:`ringpipe.cost.hardware.collectives`). A link of per-step latency a and bandwidth B
then gives t = steps·a + f·S/B on one node, so a = α/steps and B = f/β. Across nodes
with k ranks per node, every ring step sends one chunk through each node boundary, served
by the node's k NICs together (NCCL runs one ring per NIC), so the crossing link is k·B
and B = f/(k·β): B is one GPU's share of its node's network bandwidth, the cluster file's
``inter_node.bandwidth_gbs``. All-to-all sends (N-k)/N·S per rank across nodes at B
each: B = (N-k)/(N·β) (on one node (N-1)/(N·β) = f/β). Send/receive moves S one hop:
B = 1/β, a = α.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringpipe.measure.nccltests.parse import NcclTestsRun, busbw_factor

__all__ = ["RunFit", "fit_run"]

#: Sizes under this are latency-bound in every nccl-tests log seen (NCCL's LL protocol).
LATENCY_BOUND_BYTES = 1 << 20
#: The bandwidth-bound sizes: the largest sixteenth of the run's range.
BANDWIDTH_RANGE = 16


@dataclass(frozen=True)
class RunFit:
    """A run's α-β fit and the tier link it implies (module docstring); SI units."""

    run: NcclTestsRun
    alpha: float
    beta: float
    tier: str  # "intra_node" or "inter_node"
    bandwidth: float  # the tier link's bandwidth, bytes/s per GPU each way
    latency: float  # the tier link's per-step latency, s

    def time(self, nbytes: float) -> float:
        """Seconds the fit gives for ``nbytes``."""
        return self.alpha + self.beta * nbytes

    @property
    def fitted_busbw_gbs(self) -> float:
        """Bus bandwidth the fit gives at the run's largest size, GB/s."""
        size = self.run.largest.size
        return busbw_factor(self.run.collective, self.run.ranks) * size / self.time(size) / 1e9

    def as_json(self) -> dict[str, object]:
        """The ``--json`` record of this run."""
        r = self.run
        big = r.largest
        return {"log": r.source, "line": r.line, "test": r.test, "collective": r.collective,
                "ranks": r.ranks, "nodes": r.nodes, "sizes": len(r.rows),
                "largest_bytes": big.size, "busbw_gbs": big.busbw_gbs,
                "fitted_busbw_gbs": self.fitted_busbw_gbs,
                "in_place_busbw_gbs": big.in_place_busbw_gbs,
                "alpha_us": self.alpha * 1e6, "tier": self.tier,
                "link": {"bandwidth_gbs": self.bandwidth / 1e9,
                         "latency_us": self.latency * 1e6}}


def _alpha_beta(sizes: np.ndarray, times: np.ndarray) -> tuple[float, float]:
    """(α, β) of the module docstring."""
    big = sizes >= sizes.max() / BANDWIDTH_RANGE
    if big.sum() < 2:
        big[-2:] = True
    s, t = sizes[big], times[big]
    slope, intercept = (np.polyfit(s, t, 1) if s.size > 1 else (0.0, 0.0))
    if sizes.min() < LATENCY_BOUND_BYTES and sizes.size > 1:
        alpha = float(times.min())
    else:
        alpha = max(0.0, float(intercept))
    alpha = min(alpha, 0.999 * float(t.min()))  # the floor never exceeds a large time
    beta = float(slope) if slope > 0 else (float(t[-1]) - alpha) / float(s[-1])
    return alpha, beta


def _steps_and_share(run: NcclTestsRun) -> tuple[float, float]:
    """(steps per collective, the factor B·β) of the run's tier (module docstring)."""
    n, nodes = run.ranks, run.nodes
    k = n // nodes
    if run.collective == "send_recv":
        return 1.0, 1.0
    if run.collective == "all_to_all":
        return n - 1.0, ((n - k) / n if nodes > 1 else (n - 1) / n)
    f = busbw_factor(run.collective, n)
    steps = 2.0 * (n - 1) if run.collective == "all_reduce" else n - 1.0
    return steps, (f / k if nodes > 1 else f)


def fit_run(run: NcclTestsRun) -> RunFit:
    """The α-β fit of ``run`` and its tier link (module docstring)."""
    sizes = np.array([r.size for r in run.rows], dtype=float)
    times = np.array([r.time_s for r in run.rows], dtype=float)
    alpha, beta = _alpha_beta(sizes, times)
    if not beta > 0:
        raise ValueError(f"{run.source}:{run.line}: times do not grow with size; cannot fit a "
                         "bandwidth")
    steps, share = _steps_and_share(run)
    return RunFit(run, alpha, beta, "inter_node" if run.nodes > 1 else "intra_node",
                  share / beta, alpha / steps)
