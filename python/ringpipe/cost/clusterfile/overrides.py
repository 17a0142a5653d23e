"""One-off edits of a cluster description: ``--set KEY=VALUE`` on the command line.

``ringpipe plan --cluster dgx-h100 --set inter_node.bandwidth_gbs=50`` plans on the
preset with one number changed, without writing a file. ``KEY`` is the dotted name of a
key as a cluster file spells it (``peak_tflops``, ``intra_node.latency_us``,
``kernels.sm_count``, ``measured.cores``), ``VALUE`` a TOML value (``50``, ``2.5e-1``,
``true``, ``"my-cluster"``; a bare word that is not a TOML value is taken as a string).
The edits are applied to the file form of the cluster (a preset's
:meth:`~ringpipe.cost.hardware.cluster.Cluster.to_dict`, or the file as read), in order,
and the result goes through the one set of key checks
(:func:`~ringpipe.cost.clusterfile.load.read_cluster`): an unknown key, a wrong type or
an out-of-range value is refused exactly as in a file, naming the key.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import Any

import tomllib

from ringpipe.cost.clusterfile.load import read_cluster
from ringpipe.cost.clusterfile.reader import read_document
from ringpipe.cost.hardware.cluster import Cluster, cluster_preset

__all__ = ["apply_overrides", "overridden_cluster", "parse_override"]


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """``"a.b=VALUE"`` as (("a", "b"), value) (module docstring); ValueError naming
    ``--set`` and the text when it is not of that form."""
    key, sep, value = text.partition("=")
    parts = tuple(p.strip() for p in key.split("."))
    if not sep or not all(parts):
        raise ValueError(f"--set {text!r}: expected KEY=VALUE with a dotted KEY as a "
                         "cluster file spells it, e.g. inter_node.bandwidth_gbs=50")
    value = value.strip()
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare word: a string
    if isinstance(parsed, float) and parsed != parsed:
        raise ValueError(f"--set {text!r}: the value is not a number (nan)")
    return parts, parsed


def apply_overrides(document: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of the cluster-file ``document`` with every ``KEY=VALUE`` of ``overrides``
    set, in order (missing tables are created; the caller checks the result)."""
    out = copy.deepcopy(dict(document))
    for text in overrides:
        parts, value = parse_override(text)
        table = out
        for depth, part in enumerate(parts[:-1]):
            nxt = table.setdefault(part, {})
            if not isinstance(nxt, dict):
                where = ".".join(parts[:depth + 1])
                raise ValueError(f"--set {text!r}: {where} is not a table (it holds "
                                 f"{nxt!r}), so it has no key {parts[depth + 1]!r}")
            table = nxt
        table[parts[-1]] = value
    return out


def overridden_cluster(preset: str | None, path: str | os.PathLike[str] | None,
                       overrides: Sequence[str], nodes: int | None = None) -> Cluster:
    """The cluster of ``preset`` (a name) or of the file at ``path`` with ``overrides``
    applied and checked (module docstring); ``nodes`` overrides the node count."""
    if path is not None:
        document, source = read_document(path), f"{os.fspath(path)} with --set"
    else:
        document, source = cluster_preset(str(preset)).to_dict(), f"preset {preset} with --set"
    return read_cluster(apply_overrides(document, overrides), nodes, source).cluster
