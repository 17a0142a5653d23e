"""The measured constants of one machine, as ``ringpipe calibrate`` writes them.

A calibrated cluster file is an ordinary cluster file (:mod:`ringpipe.cost.cluster`,
read by ``ringpipe plan --cluster-file``) plus a ``[measured]`` table that the planner
ignores and the executable-plan predictor (:mod:`ringpipe.cost.executable`) reads::

    [measured]
    host = "ci-box"               # where it was measured
    cores = 2                     # os.cpu_count() there
    blas_threads = 1              # BLAS threads the GEMMs ran with
    call_overhead_us = 1.4        # one small array operation
    transcendental_ns = 13.0      # tanh / exp, per element
    action_overhead_us = 40.0     # the interpreter, per F/I/W action
    fresh_memory_ns_per_byte = 0.9  # first touch of freshly mapped memory (page faults)
    memory_bandwidth_gbs = 9.8    # all-core copy, read + write
    [measured.cpu_share]          # share of a core a busy thread got (load)
    inproc = 0.9                  # one process
    mpi = 0.8                     # each of mpi_processes concurrent ranks
    mpi_processes = 2
    [measured.op_bandwidth]       # one elementwise operation, by bytes it moves
    bytes = [32768, 262144, ...]
    gbs = [80.0, 60.0, ...]
    [measured.gemm.float64]       # rate = peak / (1 + m0/M + n0/N + k0/K)
    peak_gflops = 31.0
    m0 = 3.1
    n0 = 12.0
    k0 = 9.5
    shapes = [[16, 16, 16], ...]  # the measured grid
    seconds = [1.2e-6, ...]
    [measured.p2p.inproc]         # one message: alpha + bytes / bandwidth
    latency_us = 0.9
    bandwidth_gbs = 6.1
    [[measured.allreduce]]        # one step link per (runtime, algorithm, ranks)
    runtime = "mpi"
    algorithm = "ring"
    ranks = 2
    latency_us = 12.0             # per step of the step table
    bandwidth_gbs = 2.2
    sizes = [1024, ...]           # the measured all-reduces
    seconds = [4e-5, ...]

Every key is optional except ``cores``: a hand-written file for a machine you cannot
run on may give only what it knows, and the predictor falls back to the cluster's
headline figures (``peak_tflops``, ``memory_bandwidth_gbs``, ``[intra_node]``,
``[kernels] launch_overhead_us``) for the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import tomllib

from ringpipe.cost.cluster import GB, Cluster, Link
from ringpipe.cost.cluster_file import cluster_from_dict
from ringpipe.cost.gemm_curve import GemmCurve
from ringpipe.validation import check_int, check_real

US = 1e-6
RUNTIMES = ("inproc", "mpi")
AllReduceKey = tuple[str, str, int]


@dataclass(frozen=True)
class Calibration:
    """One machine's measured constants (module docstring); SI units."""

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

    def __post_init__(self) -> None:
        check_int("Calibration.cores", self.cores)
        check_int("Calibration.blas_threads", self.blas_threads)
        check_real("Calibration.call_overhead", self.call_overhead, 0.0)
        check_real("Calibration.memory_bandwidth", self.memory_bandwidth, positive=True)
        check_real("Calibration.share_inproc", self.share_inproc, maximum=1.0, positive=True)
        check_real("Calibration.fresh_memory", self.fresh_memory, 0.0)
        for runtime, _, _ in self.allreduce:
            if runtime not in RUNTIMES:
                raise ValueError(f"Calibration.allreduce: unknown runtime {runtime!r}")

    def cpu_share(self, processes: int, threads: int = 1) -> float:
        """Share of a core each of ``processes`` busy processes (``threads`` BLAS
        threads each) gets: measured for one process and for the MPI probe's count;
        otherwise min(one process's share, C / (P·k))."""
        if self.share_mpi is not None and processes == self.share_mpi[0] and processes > 1:
            return self.share_mpi[1]
        return min(self.share_inproc, self.cores / (processes * threads))

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


def _num(table: dict[str, Any], key: str, where: str, default: float | None = None) -> float:
    """``table[key]`` as a finite float >= 0 (``default`` when absent and given);
    TypeError / ValueError naming ``where.key``."""
    if key not in table:
        if default is None:
            raise ValueError(f"cluster file: {where} needs {key}")
        return default
    return check_real(f"cluster file: {where}.{key}", table[key], 0.0)


def _table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"cluster file: {where} must be a table")
    return value


def _link(table: object, where: str) -> Link:
    t = _table(table, where)
    return Link(_num(t, "bandwidth_gbs", where) * GB, _num(t, "latency_us", where) * US)


def calibration_from_dict(measured: dict[str, Any], cluster: Cluster) -> Calibration:
    """The :class:`Calibration` of a file's ``[measured]`` table (TypeError/ValueError
    naming the key when a value is missing or malformed)."""
    m = _table(measured, "[measured]")
    gemm = {}
    for dtype, t in _table(m.get("gemm", {}), "measured.gemm").items():
        w = f"measured.gemm.{dtype}"
        t = _table(t, w)
        gemm[dtype] = GemmCurve(_num(t, "peak_gflops", w) * 1e9, _num(t, "m0", w, 0.0),
                                _num(t, "n0", w, 0.0), _num(t, "k0", w, 0.0),
                                _num(t, "fixed_us", w, 0.0) * US)
    p2p = {rt: _link(t, f"measured.p2p.{rt}")
           for rt, t in _table(m.get("p2p", {}), "measured.p2p").items()}
    allreduce: dict[AllReduceKey, Link] = {}
    rows = m.get("allreduce", [])
    if not isinstance(rows, list):
        raise TypeError("cluster file: measured.allreduce must be an array of tables")
    for i, row in enumerate(rows):
        w = f"measured.allreduce[{i}]"
        row = _table(row, w)
        key = (str(row.get("runtime")), str(row.get("algorithm")),
               check_int(f"{w}.ranks", row.get("ranks"), 2))
        allreduce[key] = _link(row, w)
    return Calibration(
        cores=check_int("measured.cores", m.get("cores")),
        blas_threads=check_int("measured.blas_threads", m.get("blas_threads", 1)),
        call_overhead=_num(m, "call_overhead_us", "measured",
                           cluster.kernels.launch_overhead / US) * US,
        memory_bandwidth=_num(m, "memory_bandwidth_gbs", "measured",
                              cluster.memory_bandwidth / GB) * GB,
        gemm=MappingProxyType(gemm), p2p=MappingProxyType(p2p),
        allreduce=MappingProxyType(allreduce), host=str(m.get("host", "")),
        op_bandwidth=_op_bandwidth(m.get("op_bandwidth")),
        transcendental=_num(m, "transcendental_ns", "measured", 0.0) * 1e-9,
        fresh_memory=_num(m, "fresh_memory_ns_per_byte", "measured", 0.0) * 1e-9,
        action_overhead=(None if "action_overhead_us" not in m else
                         _num(m, "action_overhead_us", "measured") * US),
        **_shares(m.get("cpu_share", {})))


def _shares(table: object) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise TypeError("cluster file: [measured.cpu_share] must be a table")
    out: dict[str, Any] = {}
    for key in ("inproc", "mpi"):
        if key in table:
            check_real(f"cluster file: measured.cpu_share.{key}", table[key], maximum=1.0,
                       positive=True)
    if "inproc" in table:
        out["share_inproc"] = float(table["inproc"])
    if "mpi" in table:
        out["share_mpi"] = (check_int("measured.cpu_share.mpi_processes",
                                      table.get("mpi_processes")), float(table["mpi"]))
    return out


def _op_bandwidth(table: object) -> tuple[tuple[float, float], ...]:
    if table is None:
        return ()
    if not isinstance(table, dict) or len(table.get("bytes", [])) != len(table.get("gbs", [])):
        raise ValueError("cluster file: measured.op_bandwidth needs equal-length "
                         "lists bytes and gbs")
    rows = sorted((float(b), float(g) * GB) for b, g in zip(table["bytes"], table["gbs"],
                                                            strict=True))
    if any(b <= 0 or g <= 0 for b, g in rows):
        raise ValueError("cluster file: measured.op_bandwidth values must be > 0")
    return tuple(rows)


def load_calibrated(path: str | Path) -> tuple[Cluster, Calibration]:
    """Read a calibrated cluster file (TOML): the cluster and its measured constants.

    ValueError when the file cannot be read, does not parse, or has no ``[measured]``
    table (a plain cluster file: run ``ringpipe calibrate`` first).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"cluster file: cannot read {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"cluster file: {str(path)!r} does not parse: {exc}") from None
    cluster = cluster_from_dict(data)
    if "measured" not in data:
        raise ValueError(f"cluster file: {str(path)!r} has no [measured] table; write one "
                         "with `ringpipe calibrate --output FILE`")
    return cluster, calibration_from_dict(data["measured"], cluster)
