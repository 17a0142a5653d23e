"""Cluster files: TOML or JSON in vendor units, read into a :class:`Cluster` (and, for a
calibrated file, a :class:`~ringpipe.cost.hardware.calibration.Calibration`).

The headline keys are documented in :mod:`ringpipe.cost.hardware.cluster`, the ``[measured]``
table in :mod:`ringpipe.cost.clusterfile.measured`. :func:`load_cluster_file` is the one
name for reading one: the file goes through the one reader,
:func:`ringpipe.cost.clusterfile.reader.read_document` (format by suffix or content,
BOM, binary and unreadable files), and then through :func:`read_cluster`, which checks
the whole document, ``[measured]`` included, into a :class:`ClusterFile`. ``ringpipe
plan`` and ``ringpipe verify`` therefore accept and refuse the same files and build the
same :class:`Cluster` from them.
Unknown keys, missing keys, wrong types, non-finite and out-of-range numbers raise
ValueError or TypeError naming the file and the key as it is spelled in the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ringpipe.cost.clusterfile.measured import calibration_from_dict, read_link
from ringpipe.cost.clusterfile.reader import read_document
from ringpipe.cost.clusterfile.section import Section
from ringpipe.cost.clusterfile.tables import read_collectives
from ringpipe.cost.hardware.calibration import Calibration
from ringpipe.cost.hardware.cluster import (
    CALIBRATED_FRACTION_OF_PEAK,
    DEVICES,
    GB,
    GIB,
    TFLOP,
    Cluster,
    Link,
)
from ringpipe.cost.hardware.gpu import A100, MICROSECOND, GpuKernels
from ringpipe.files import display

__all__ = ["TOP_KEYS", "ClusterFile", "load_cluster_file", "read_cluster"]

#: The top-level keys (``measured``: ``ringpipe calibrate``'s data, cost.measured_table).
TOP_KEYS = ("name", "device", "nodes", "gpus_per_node", "peak_tflops", "memory_gib",
            "memory_bandwidth_gbs", "achievable_fraction", "intra_node", "inter_node",
            "kernels", "collectives", "measured")
#: ``[measured] backend`` values that mean a file was measured on CPUs (its default
#: ``device`` then is "cpu", for files written before the key existed).
_CPU_BACKENDS = ("numpy", "numba")
_LINK_KEYS = ("bandwidth_gbs", "latency_us")
_KERNEL_INTS = ("sm_count", "tile_m", "tile_n")
#: Most GPUs one node (one NVLink domain) may have: NVIDIA's largest, NVL576, has 576.
MAX_GPUS_PER_NODE = 4096
_KERNEL_KEYS = (*_KERNEL_INTS, "flash_fraction", "launch_overhead_us", "saturation",
                "fp8_ratio", "grouped_gemm_efficiency")


def _link(top: Section, key: str, extra: tuple[str, ...] = ()) -> Link:
    t = top.table(key, required=True)
    t.only((*_LINK_KEYS, *extra))
    return read_link(t)


def _kernels(top: Section) -> GpuKernels:
    t = top.table("kernels")
    t.only(_KERNEL_KEYS)
    fields: dict[str, Any] = {k: t.integer(k) for k in _KERNEL_INTS if k in t}
    if "flash_fraction" in t:
        fields["flash_fraction"] = t.real("flash_fraction", positive=True, maximum=1.0)
    if "saturation" in t:
        fields["saturation"] = t.real("saturation", minimum=0.0)
    if "fp8_ratio" in t:
        fields["fp8_ratio"] = t.real("fp8_ratio", minimum=0.0)
    if "grouped_gemm_efficiency" in t:
        fields["grouped_gemm_efficiency"] = t.real("grouped_gemm_efficiency", positive=True,
                                                   maximum=1.0)
    if "launch_overhead_us" in t:
        fields["launch_overhead"] = t.real("launch_overhead_us", unit=MICROSECOND,
                                           minimum=0.0)
    return replace(A100, **fields)


def _cluster(top: Section, nodes: int | None) -> Cluster:
    """The headline keys, checked in the order the format lists them."""
    top.only(TOP_KEYS)
    name = top.text("name", "custom")
    if not name:
        raise ValueError(f"{top.label('name')} must not be empty")
    measured = top.get("measured", {})
    backend = measured.get("backend") if isinstance(measured, Mapping) else None
    device = top.text("device", "cpu" if backend in _CPU_BACKENDS else "gpu",
                      choices=DEVICES)
    file_nodes = top.integer("nodes", 1)
    gpus = top.integer("gpus_per_node", maximum=MAX_GPUS_PER_NODE)
    peak = top.real("peak_tflops", unit=TFLOP, positive=True)
    memory = top.real("memory_gib", unit=GIB, positive=True)
    bandwidth = top.real("memory_bandwidth_gbs", unit=GB, positive=True)
    fraction = top.real("achievable_fraction", CALIBRATED_FRACTION_OF_PEAK, positive=True,
                        maximum=1.0)
    intra = _link(top, "intra_node")
    inter = _link(top, "inter_node", ("nic_bandwidth_gbs",))
    nic = top.table("inter_node").real("nic_bandwidth_gbs", None, unit=GB, positive=True)
    if gpus > 1 and inter.bandwidth > intra.bandwidth:
        raise ValueError(
            f"{top.source}: inter_node.bandwidth_gbs ({inter.bandwidth / GB:g}) exceeds "
            f"intra_node.bandwidth_gbs ({intra.bandwidth / GB:g}): inconsistent (traffic "
            "would route through the NIC); both are per GPU, each way, in GB/s")
    return Cluster(name=name, nodes=file_nodes if nodes is None else nodes,
                   gpus_per_node=gpus, peak_flops=peak, memory_bytes=memory,
                   memory_bandwidth=bandwidth, intra=intra, inter=inter,
                   achievable_fraction=fraction, kernels=_kernels(top), nic_bandwidth=nic,
                   device=device, collectives=read_collectives(top))


@dataclass(frozen=True)
class ClusterFile:
    """A cluster file, read and checked: its :class:`Cluster` and, when the file has a
    ``[measured]`` table (``ringpipe calibrate`` writes one), the measured constants
    (:class:`Calibration`, else None). ``source`` names the file in messages."""

    cluster: Cluster
    calibration: Calibration | None
    source: str = "cluster file"

    def calibrated(self) -> tuple[Cluster, Calibration]:
        """(cluster, calibration), or ValueError naming the file when it has no
        ``[measured]`` table (a plain cluster file, which ``ringpipe calibrate --output
        FILE`` turns into a calibrated one)."""
        if self.calibration is None:
            raise ValueError(f"{self.source}: the cluster file has no [measured] table; "
                             "verify --cluster-file needs a calibrated cluster file, as "
                             "`ringpipe calibrate --output FILE` writes")
        return self.cluster, self.calibration


def read_cluster(data: Mapping[str, Any], nodes: int | None = None,
                 source: str = "cluster file") -> ClusterFile:
    """The whole document ``data`` (a cluster file's parsed form) checked: its
    :class:`Cluster` and, when it has a ``[measured]`` table, its :class:`Calibration`.

    ``nodes`` overrides the file's ``nodes`` (which is optional, default 1; it is still
    checked). ``source`` (the file's name) starts every error message.
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"{source}: the top level must be a table, got "
                        f"{type(data).__name__}")
    top = Section(data, source)
    cluster = _cluster(top, nodes)
    if "measured" not in top:
        return ClusterFile(cluster, None, source)
    return ClusterFile(cluster, calibration_from_dict(top.get("measured"), cluster, source),
                       source)


def load_cluster_file(path: str | os.PathLike[str], nodes: int | None = None) -> ClusterFile:
    """Read and check the cluster file at ``path`` (TOML or JSON, through the one reader
    :func:`~ringpipe.cost.clusterfile.reader.read_document`); ``nodes`` overrides the
    file's node count. What ``ringpipe plan --cluster-file`` and ``ringpipe verify
    --cluster-file`` read (the latter needs :meth:`ClusterFile.calibrated`)."""
    return read_cluster(read_document(path), nodes, display(os.fspath(path)))
