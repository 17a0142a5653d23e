"""Cluster files: TOML or JSON in vendor units, read into a :class:`Cluster`.

The format is documented in :mod:`ringpipe.cost.cluster`; unknown keys, missing keys,
wrong types and non-positive numbers raise ValueError or TypeError naming the key.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import tomllib

from ringpipe.cost.cluster import GB, GIB, TFLOP, Cluster, Link, _positive
from ringpipe.cost.gpu import A100, MICROSECOND, GpuKernels
from ringpipe.validation import check_real

_TOP_KEYS = {"name", "nodes", "gpus_per_node", "peak_tflops", "memory_gib",
             "memory_bandwidth_gbs", "achievable_fraction", "intra_node", "inter_node",
             "kernels", "measured"}  # measured: ringpipe calibrate's raw data (cost.calibrated)
_LINK_KEYS = {"bandwidth_gbs", "latency_us", "nic_bandwidth_gbs"}
_KERNEL_KEYS = {"sm_count", "tile_m", "tile_n", "flash_fraction", "launch_overhead_us",
                "saturation"}


def _require(data: dict[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ValueError(f"cluster file: missing {where}{key}")
    return data[key]


def _link(data: object, section: str) -> Link:
    if not isinstance(data, dict):
        raise TypeError(f"cluster file: [{section}] must be a table of "
                        f"{', '.join(sorted(_LINK_KEYS))}")
    unknown = set(data) - _LINK_KEYS
    if unknown:
        raise ValueError(f"cluster file: unknown key {section}.{sorted(unknown)[0]}")
    data = {k: v for k, v in data.items() if k != "nic_bandwidth_gbs"}
    bw = _require(data, "bandwidth_gbs", f"{section}.")
    lat = _require(data, "latency_us", f"{section}.")
    _positive("cluster file", f"{section}.bandwidth_gbs", bw)
    check_real(f"cluster file: {section}.latency_us", lat, 0.0)
    return Link(bw * GB, lat * MICROSECOND)


def _kernels(data: object, base: GpuKernels) -> GpuKernels:
    if not isinstance(data, dict):
        raise TypeError("cluster file: [kernels] must be a table of "
                        f"{', '.join(sorted(_KERNEL_KEYS))}")
    unknown = set(data) - _KERNEL_KEYS
    if unknown:
        raise ValueError(f"cluster file: unknown key kernels.{sorted(unknown)[0]}")
    fields = {k: v for k, v in data.items() if k != "launch_overhead_us"}
    if "launch_overhead_us" in data:
        fields["launch_overhead"] = check_real("cluster file: kernels.launch_overhead_us",
                                               data["launch_overhead_us"]) * MICROSECOND
    return replace(base, **fields)


def cluster_from_dict(data: dict[str, Any], nodes: int | None = None) -> Cluster:
    """A :class:`Cluster` from the file form (see module docstring).

    ``nodes`` overrides the file's ``nodes`` (which is optional, default 1). Unknown
    keys, missing keys, wrong types and non-positive numbers raise ValueError or
    TypeError naming the key.
    """
    if not isinstance(data, dict):
        raise TypeError("cluster file: the top level must be a table")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ValueError(f"cluster file: unknown key {sorted(unknown)[0]!r}; known: "
                         f"{', '.join(sorted(_TOP_KEYS))}")
    for key in ("peak_tflops", "memory_gib", "memory_bandwidth_gbs"):
        _positive("cluster file", key, _require(data, key, ""))
    kwargs: dict[str, Any] = {}
    if "achievable_fraction" in data:
        kwargs["achievable_fraction"] = data["achievable_fraction"]
    if "kernels" in data:
        kwargs["kernels"] = _kernels(data["kernels"], A100)
    inter = _require(data, "inter_node", "")
    if isinstance(inter, dict) and "nic_bandwidth_gbs" in inter:
        _positive("cluster file", "inter_node.nic_bandwidth_gbs", inter["nic_bandwidth_gbs"])
        kwargs["nic_bandwidth"] = inter["nic_bandwidth_gbs"] * GB
    return Cluster(
        name=str(data.get("name", "custom")),
        nodes=data.get("nodes", 1) if nodes is None else nodes,
        gpus_per_node=_require(data, "gpus_per_node", ""),
        peak_flops=data["peak_tflops"] * TFLOP,
        memory_bytes=data["memory_gib"] * GIB,
        memory_bandwidth=data["memory_bandwidth_gbs"] * GB,
        intra=_link(_require(data, "intra_node", ""), "intra_node"),
        inter=_link(_require(data, "inter_node", ""), "inter_node"),
        **kwargs,
    )


def load_cluster(path: str | Path, nodes: int | None = None) -> Cluster:
    """Read a cluster file: TOML (``.toml``) or JSON (``.json``, or anything else that
    parses as JSON). ``nodes`` overrides the file's node count."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ValueError(f"cluster file: cannot read {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"cluster file: {str(path)!r} is not UTF-8 text (byte {exc.start}: "
                         f"{exc.reason}); expected TOML or JSON") from None
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cluster file: {str(path)!r} does not parse: {exc}") from None
    return cluster_from_dict(data, nodes)
