"""One machine's measured constants (:class:`Calibration`), what the executable-plan
predictor (:mod:`ringpipe.cost.executable.predict`) prices operators and messages with.

The constants are measured by ``ringpipe calibrate`` and stored in a cluster file's
``[measured]`` table (the format: :mod:`ringpipe.cost.clusterfile.measured`, which builds a
:class:`Calibration` from it). Units here are SI: seconds, bytes/s, FLOP/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from ringpipe.cost.hardware.cluster import Cluster, Link
from ringpipe.cost.hardware.gemm_curve import GemmCurve
from ringpipe.cost.hardware.gemm_table import GemmTable
from ringpipe.validation import check_int, check_real

__all__ = ["RUNTIMES", "AllReduceKey", "Calibration"]

#: Runtimes a calibration measures links for: in-process ranks and MPI processes.
RUNTIMES = ("inproc", "mpi")
AllReduceKey = tuple[str, str, int]


@dataclass(frozen=True)
class Calibration:
    """One machine's measured constants, SI units: ``cores`` and ``blas_threads`` of the
    machine, the per-call overhead, the all-core memory bandwidth, GEMM curves by dtype,
    point-to-point links by runtime, all-reduce step links by (runtime, algorithm,
    ranks), one operation's bandwidth by bytes moved, the CPU shares measured, the
    per-element, per-action and per-fresh-byte costs, the measured GEMM grids by
    dtype, the cost of the step's bookkeeping copies per parameter tensor and their
    bandwidth, one array operation's cost inside a step (None: not measured), and what
    every MPI step costs once beyond its priced parts;
    :mod:`ringpipe.cost.clusterfile.measured` gives each one's key in the file."""

    cores: int
    blas_threads: int
    call_overhead: float
    memory_bandwidth: float
    gemm: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    p2p: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    allreduce: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    host: str = ""
    op_bandwidth: tuple[tuple[float, float], ...] = ()
    share_inproc: float = 1.0
    share_mpi: tuple[int, float] | None = None
    transcendental: float = 0.0
    action_overhead: float | None = None
    fresh_memory: float = 0.0
    gemm_tables: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    copy_bandwidth: float | None = None
    tensor_overhead: float | None = None
    step_call_overhead: float | None = None
    mpi_step_overhead: float = 0.0

    def __post_init__(self) -> None:
        check_int("Calibration.cores", self.cores)
        check_int("Calibration.blas_threads", self.blas_threads)
        check_real("Calibration.call_overhead", self.call_overhead, 0.0)
        check_real("Calibration.memory_bandwidth", self.memory_bandwidth, positive=True)
        check_real("Calibration.share_inproc", self.share_inproc, maximum=1.0, positive=True)
        check_real("Calibration.fresh_memory", self.fresh_memory, 0.0)
        check_real("Calibration.mpi_step_overhead", self.mpi_step_overhead, 0.0)
        if self.copy_bandwidth is not None:
            check_real("Calibration.copy_bandwidth", self.copy_bandwidth, positive=True)
        for runtime, _, _ in self.allreduce:
            if runtime not in RUNTIMES:
                raise ValueError(f"Calibration.allreduce: unknown runtime {runtime!r}")

    def cpu_share(self, processes: int, threads: int = 1) -> float:
        """Share of a core that paces ``processes`` busy processes (``threads`` BLAS
        threads each): measured for one process and, for the MPI probe's count, as the
        least-served rank's share; otherwise min(one process's share, C / (P·k))."""
        if self.share_mpi is not None and processes == self.share_mpi[0] and processes > 1:
            return self.share_mpi[1]
        return min(self.share_inproc, self.cores / (processes * threads))

    @property
    def op_overhead(self) -> float:
        """Seconds one array operation costs beyond its arithmetic inside a step: the
        in-step measurement when there is one, else the tight-loop ``call_overhead``."""
        return self.call_overhead if self.step_call_overhead is None else \
            self.step_call_overhead

    def bandwidth_for(self, nbytes: float) -> float:
        """Bytes/s of one memory-bound operation moving ``nbytes``: the measured curve,
        interpolated linearly in log(bytes) and held flat beyond its ends; without
        one, ``memory_bandwidth``."""
        if not self.op_bandwidth:
            return self.memory_bandwidth
        sizes = [math.log(max(b, 1.0)) for b, _ in self.op_bandwidth]
        rates = [r for _, r in self.op_bandwidth]
        return float(np.interp(math.log(max(nbytes, 1.0)), sizes, rates))

    def curve(self, dtype: str, cluster: Cluster) -> GemmCurve:
        """The GEMM curve of ``dtype``, else a flat one at the cluster's matmul rate."""
        found = self.gemm.get(dtype)
        return found if found is not None else GemmCurve(cluster.achievable_flops)

    def gemm_rates(self, dtype: str, cluster: Cluster) -> GemmTable | GemmCurve:
        """What prices a GEMM of ``dtype``: the measured grid
        (:class:`~ringpipe.cost.hardware.gemm_table.GemmTable`) when the calibration
        holds a full one, else :meth:`curve`. Both give ``rate(m, n, k)``."""
        table = self.gemm_tables.get(dtype)
        return table if table is not None else self.curve(dtype, cluster)

    def p2p_link(self, runtime: str, cluster: Cluster) -> Link:
        """The point-to-point link of ``runtime``, else the cluster's intra-node link."""
        return self.p2p.get(runtime, cluster.intra)

    def allreduce_link(self, runtime: str, algorithm: str, ranks: int,
                       cluster: Cluster) -> Link:
        """The step link measured for (runtime, algorithm, ranks); for a group larger
        than any measured, the largest measured; else the p2p link."""
        sizes = sorted(n for (r, a, n) in self.allreduce if r == runtime and a == algorithm)
        if not sizes:
            return self.p2p_link(runtime, cluster)
        below = [n for n in sizes if n <= ranks]
        return self.allreduce[(runtime, algorithm, below[-1] if below else sizes[0])]
