"""A collective's measured times by size, as nccl-tests reports them: preferred over α-β.

The α-β model (:mod:`ringpipe.cost.hardware.collectives`) is a straight line through a
curve that is not straight: NCCL switches protocol (LL, LL128, Simple) and algorithm
(ring, tree, NVLS) with the size, and the measured time follows those switches. When a
cluster file carries a measured table for the same collective on the same number of
ranks and nodes (``[[collectives]]``, written by ``ringpipe calibrate
--from-nccl-tests``), the planner reads the time off the table instead
(:meth:`CollectiveModel.best <ringpipe.cost.hardware.collectives.CollectiveModel.best>`).

**Sizes** are nccl-tests' ``size`` column (``count × type size``): the bytes per rank
for all-reduce, send/recv and all-to-all, the whole gathered (or scattered) buffer for
all-gather and reduce-scatter, which is also what ringpipe's cost model calls ``nbytes``.

**Between and beyond the measured sizes** the time is interpolated linearly in
log(size)–log(time) (a power law between neighbours, exact at every measured size).
Below the smallest size the time is the smallest size's (the latency floor); above the
largest it grows in proportion to the size (the bandwidth of the largest size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ringpipe.validation import check_int, check_real

__all__ = ["MEASURED_COLLECTIVES", "MeasuredCollective"]

#: Collectives a measured table may describe (ringpipe's names).
MEASURED_COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all",
                        "send_recv")


@dataclass(frozen=True)
class MeasuredCollective:
    """Seconds of ``collective`` on ``ranks`` ranks over ``nodes`` nodes at each of
    ``sizes`` bytes (increasing); ``source`` says where they came from."""

    collective: str
    ranks: int
    nodes: int
    sizes: tuple[float, ...]
    seconds: tuple[float, ...]
    source: str = ""

    def __post_init__(self) -> None:
        if self.collective not in MEASURED_COLLECTIVES:
            raise ValueError(f"MeasuredCollective.collective must be one of "
                             f"{', '.join(MEASURED_COLLECTIVES)}, got {self.collective!r}")
        check_int("MeasuredCollective.ranks", self.ranks)
        check_int("MeasuredCollective.nodes", self.nodes, 1, self.ranks)
        if not self.sizes or len(self.sizes) != len(self.seconds):
            raise ValueError(f"MeasuredCollective: {len(self.sizes)} sizes and "
                             f"{len(self.seconds)} times; need equal, non-zero counts")
        for i, (size, t) in enumerate(zip(self.sizes, self.seconds, strict=True)):
            check_real(f"MeasuredCollective.sizes[{i}]", size, positive=True)
            check_real(f"MeasuredCollective.seconds[{i}]", t, positive=True)
        if any(b <= a for a, b in zip(self.sizes, self.sizes[1:], strict=False)):
            raise ValueError("MeasuredCollective.sizes must increase strictly")

    def time(self, nbytes: float) -> float:
        """Seconds for ``nbytes`` (module docstring); 0 for 0 bytes."""
        if nbytes <= 0:
            return 0.0
        if nbytes >= self.sizes[-1]:
            return self.seconds[-1] * nbytes / self.sizes[-1]
        if nbytes <= self.sizes[0]:
            return self.seconds[0]
        logs = np.log(np.asarray(self.sizes))
        return float(np.exp(np.interp(math.log(nbytes), logs, np.log(self.seconds))))

    def to_dict(self) -> dict[str, object]:
        """The file form (``[[collectives]]`` row, times in µs)."""
        return {"collective": self.collective, "ranks": self.ranks, "nodes": self.nodes,
                "source": self.source, "sizes": [int(s) if float(s).is_integer() else s
                                                 for s in self.sizes],
                "time_us": [t * 1e6 for t in self.seconds]}
