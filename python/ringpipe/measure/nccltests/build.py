"""A cluster file from nccl-tests logs: a preset's GPU numbers, the links the logs imply,
and the logs' measured tables.

``ringpipe calibrate --from-nccl-tests LOG... -o FILE [--base PRESET]``:

* the GPU numbers (peak, memory, HBM, ``[kernels]``) are the ``--base`` preset's
  (default: the preset whose GPU the logs' device lines name, H100 → ``dgx-h100``, H200
  → ``dgx-h200``, else ``dgx-a100``);
* ``[intra_node]`` comes from the runs on one node, ``[inter_node]`` from the runs
  across nodes (:mod:`.fit`); a tier no log measures keeps the preset's link. Per tier
  the run that sets the link is the one with the largest size, all-reduce first, then
  reduce-scatter, all-gather, send/receive, all-to-all;
* ``gpus_per_node`` is the ranks per node of the multi-node runs (else of the one-node
  runs, else the preset's), ``nodes`` the most nodes a log spans;
* every run's sizes and out-of-place times become a ``[[collectives]]`` row (the last
  run of a (collective, ranks, nodes) wins), which the planner prefers over α-β for a
  group of that shape (:mod:`ringpipe.cost.hardware.measured`).

The result is checked by the one reader (:func:`~ringpipe.cost.clusterfile.load.
read_cluster`) before anything is written; a link that breaks the file's rules (e.g. an
inter-node bandwidth above the intra-node one) is refused naming the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ringpipe.cost.clusterfile.load import read_cluster
from ringpipe.cost.hardware.cluster import cluster_preset
from ringpipe.cost.hardware.measured import MeasuredCollective
from ringpipe.measure.nccltests.fit import LATENCY_BOUND_BYTES, RunFit, fit_run
from ringpipe.measure.nccltests.parse import NcclTestsRun

__all__ = ["NcclTestsCluster", "cluster_from_runs", "preset_for_gpu"]

_PREFERENCE = ("all_reduce", "reduce_scatter", "all_gather", "send_recv", "all_to_all")


@dataclass(frozen=True)
class NcclTestsCluster:
    """The cluster-file document built from the runs, their fits, and notes."""

    document: dict[str, Any]
    fits: tuple[RunFit, ...]
    notes: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """``{"logs": [per run], "intra_node": ..., "inter_node": ..., "base": ...}``."""
        d = self.document
        return {"logs": [f.as_json() for f in self.fits], "intra_node": d["intra_node"],
                "inter_node": d["inter_node"], "gpus_per_node": d["gpus_per_node"],
                "nodes": d["nodes"], "name": d["name"], "notes": list(self.notes)}


def preset_for_gpu(name: str) -> str:
    """The preset whose GPU ``name`` names (H200, H100, else A100: ``dgx-a100``)."""
    for mark, preset in (("H200", "dgx-h200"), ("H100", "dgx-h100"), ("A100", "dgx-a100")):
        if mark in name:
            return preset
    return "dgx-a100"


def _base_name(runs: Sequence[NcclTestsRun], base: str | None) -> str:
    return base if base is not None else preset_for_gpu(" ".join(r.gpu for r in runs))


def _chosen(fits: Sequence[RunFit], tier: str) -> RunFit | None:
    mine = [f for f in fits if f.tier == tier]
    if not mine:
        return None
    return min(mine, key=lambda f: (_PREFERENCE.index(f.run.collective), -f.run.largest.size,
                                    fits.index(f)))


def cluster_from_runs(runs: Sequence[NcclTestsRun], base: str | None = None,
                      name: str | None = None) -> NcclTestsCluster:
    """The cluster file the runs imply (module docstring); ValueError naming the log when
    a run cannot be fitted or the result is not a valid cluster file."""
    if not runs:
        raise ValueError("--from-nccl-tests: no runs to read")
    preset = _base_name(runs, base)
    doc = cluster_preset(preset).to_dict()
    fits = tuple(fit_run(r) for r in runs)
    notes = [] if base is not None else [f"GPU numbers from preset {preset} (--base to "
                                         "choose another)"]
    for tier in ("intra_node", "inter_node"):
        fit = _chosen(fits, tier)
        if fit is None:
            notes.append(f"no log measures {tier.replace('_', '-')} links: kept {preset}'s")
            continue
        doc[tier] = {"bandwidth_gbs": fit.bandwidth / 1e9, "latency_us": fit.latency * 1e6}
        notes.append(f"{tier} from {fit.run.source}:{fit.run.line} ({fit.run.test}, "
                     f"{fit.run.ranks} ranks on {fit.run.nodes} node(s))")
    measured = {f.tier for f in fits}
    if "inter_node" not in measured and \
            doc["inter_node"]["bandwidth_gbs"] > doc["intra_node"]["bandwidth_gbs"]:
        doc["inter_node"]["bandwidth_gbs"] = doc["intra_node"]["bandwidth_gbs"]
        doc["inter_node"].pop("nic_bandwidth_gbs", None)
        notes.append("inter-node bandwidth capped at the measured intra-node one")
    for fit in fits:
        if fit.run.rows[0].size >= LATENCY_BOUND_BYTES:
            notes.append(f"{fit.run.source}:{fit.run.line} measured no size under 1 MiB: its "
                         "latency is the large sizes' intercept, not a measured floor")
    multi = [r for r in runs if r.nodes > 1]
    per_node = [r.ranks // r.nodes for r in (multi or runs)]
    doc["gpus_per_node"] = max(per_node) if per_node else doc["gpus_per_node"]
    doc["nodes"] = max(r.nodes for r in runs)
    doc["name"] = name or f"{preset}+nccl-tests"
    tables: dict[tuple[str, int, int], MeasuredCollective] = {}
    for r in runs:
        tables[(r.collective, r.ranks, r.nodes)] = MeasuredCollective(
            r.collective, r.ranks, r.nodes, tuple(float(x.size) for x in r.rows),
            tuple(x.time_s for x in r.rows), f"{r.source}:{r.line}")
    doc["collectives"] = [t.to_dict() for t in tables.values()]
    source = ", ".join(dict.fromkeys(r.source for r in runs))
    try:
        read_cluster(doc, source=f"the cluster built from {source}")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--from-nccl-tests: {exc}") from None
    return NcclTestsCluster(doc, fits, tuple(notes))

