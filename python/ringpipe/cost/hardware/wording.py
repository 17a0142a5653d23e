"""How the planner names a cluster's ranks and their speed: GPUs and TFLOP/s for a GPU
cluster, processes and GFLOP/s for a cluster file measured on CPUs (``device = "cpu"``,
:class:`~ringpipe.cost.hardware.cluster.Cluster`), whose ranks are processes sharing a
machine's cores and run at GFLOP/s, where "0 model TFLOP/s per GPU" would say nothing."""

from __future__ import annotations

from dataclasses import dataclass

from ringpipe.cost.hardware.cluster import Cluster

__all__ = ["Wording", "wording"]


@dataclass(frozen=True)
class Wording:
    """The words for one cluster: ``rank`` / ``ranks`` (one, several) and the FLOP/s
    unit ``flops_unit`` worth ``flops_scale`` FLOP/s."""

    rank: str
    ranks: str
    flops_unit: str
    flops_scale: float

    def flops(self, tflops: float) -> float:
        """A rate given in TFLOP/s, in :attr:`flops_unit`."""
        return tflops * 1e12 / self.flops_scale

    def count(self, n: int) -> str:
        """``"8 GPUs"``, ``"1 process"``."""
        return f"{n} {self.rank if n == 1 else self.ranks}"


GPU_WORDS = Wording("GPU", "GPUs", "TFLOP/s", 1e12)
CPU_WORDS = Wording("process", "processes", "GFLOP/s", 1e9)


def wording(cluster: Cluster) -> Wording:
    """The words for ``cluster``'s ranks (module docstring)."""
    return CPU_WORDS if cluster.device == "cpu" else GPU_WORDS
