"""``ringpipe cluster``: presets as files you can edit, and a check of any cluster file.

    ringpipe cluster show PRESET [--format toml|json] [--nodes N]
    ringpipe cluster check FILE|- [--format toml|json]

``show`` prints a preset (:data:`~ringpipe.cost.hardware.cluster.CLUSTER_PRESETS`) in
the cluster-file format, every key spelled with its unit, ready to save and edit:
``ringpipe cluster show dgx-h100 > mine.toml``. ``check`` reads a file (``-``: standard
input) through the one reader and the one set of key checks that ``plan`` and
``verify`` use (:func:`~ringpipe.cost.clusterfile.load.read_cluster`) and prints it back
as the checked cluster, in the units the keys spell, with a one-line summary on top;
a ``[measured]`` table is kept as read. So ``ringpipe cluster show dgx-h100 | ringpipe
cluster check -`` prints the same cluster. A bad file exits 2 with one line naming the
file and the key.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ringpipe.cost.clusterfile.load import load_cluster_file, read_cluster
from ringpipe.cost.clusterfile.overrides import overridden_cluster
from ringpipe.cost.clusterfile.reader import MAX_BYTES, parse_document, read_document
from ringpipe.cost.clusterfile.writer import dumps
from ringpipe.cost.hardware.cluster import CLUSTER_PRESETS, GB, TFLOP, Cluster, cluster_preset
from ringpipe.cost.hardware.wording import wording

FORMATS = ("toml", "json")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``cluster`` subcommand (``show``, ``check``)."""
    p = subparsers.add_parser("cluster", help="print a preset as an editable cluster file; "
                                              "check a cluster file")
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p),
                               help="show: a preset as a file; check: validate a file")
    actions.required = True
    show = actions.add_parser("show", help="print a preset as a cluster file")
    show.add_argument("preset", choices=list(CLUSTER_PRESETS), metavar="PRESET",
                      help=f"one of {', '.join(CLUSTER_PRESETS)}")
    show.add_argument("--nodes", type=int, default=1, help="node count (default 1)")
    check = actions.add_parser("check", help="validate a cluster file and print it")
    check.add_argument("file", metavar="FILE", help="TOML or JSON cluster file; - reads "
                                                    "standard input")
    for q in (show, check):
        q.add_argument("--format", choices=FORMATS, default="toml",
                       help="output format (default toml)")
    p.set_defaults(handler=run)


def render(document: dict[str, Any], fmt: str, header: str) -> str:
    """``document`` as TOML (``header`` as comment lines on top) or JSON."""
    if fmt == "json":
        return json.dumps(document, indent=2)
    return dumps(document, header).rstrip("\n")


def summary(cluster: Cluster) -> str:
    """One line: name, ranks, peak, memory, links."""
    w = wording(cluster)
    return (f"{cluster.name}: {cluster.nodes} node(s) x {w.count(cluster.gpus_per_node)}, "
            f"peak {w.flops(cluster.peak_flops / TFLOP):.4g} {w.flops_unit}, "
            f"{cluster.memory_bytes / 2**30:.4g} GiB at {cluster.memory_bandwidth / GB:.4g} "
            f"GB/s; intra-node {cluster.intra.bandwidth / GB:.4g} GB/s, "
            f"{cluster.intra.latency * 1e6:.4g} us; inter-node "
            f"{cluster.inter.bandwidth / GB:.4g} GB/s, {cluster.inter.latency * 1e6:.4g} us"
            + (f"; {len(cluster.collectives)} measured collective table(s)"
               if cluster.collectives else ""))


def build_cluster(args: argparse.Namespace) -> Cluster:
    """The cluster ``plan``'s arguments describe (``--cluster`` or ``--cluster-file``,
    ``--nodes``, ``--set``): a preset, or a cluster file whose ``nodes``
    (unless ``--nodes`` overrides it) obeys the ``max_nodes`` limit as ``--nodes``
    does (:mod:`ringpipe.limits`)."""
    if (args.cluster is None) == (args.cluster_file is None):
        raise ValueError("give exactly one of --cluster and --cluster-file")
    if args.overrides:  # --set: ringpipe.cost.clusterfile.overrides
        cluster = overridden_cluster(args.cluster, args.cluster_file, args.overrides,
                                     args.nodes)
    elif args.cluster_file is not None:
        cluster = load_cluster_file(args.cluster_file, args.nodes).cluster
    else:
        return cluster_preset(args.cluster, 1 if args.nodes is None else args.nodes)
    if args.nodes is None:  # the file's (or --set's) count: the same bound as --nodes
        args.env.limits.require("max_nodes", f"{args.cluster_file or '--set'}: nodes",
                                cluster.nodes)
    return cluster


def _read(name: str) -> tuple[dict[str, Any], str]:
    if name != "-":
        return read_document(name), name
    raw = sys.stdin.buffer.read(MAX_BYTES + 1)
    return parse_document("<stdin>", raw), "<stdin>"


def run(args: argparse.Namespace) -> int:
    """Handler of ``ringpipe cluster``; 0 on success (a bad file raises: exit 2)."""
    if args.action == "show":
        cluster = cluster_preset(args.preset, args.nodes)
        args.env.limits.require("max_nodes", "--nodes", args.nodes)
        header = (f"preset {args.preset}, written by `ringpipe cluster show`: edit the numbers "
                  "for your cluster\n(units are in the key names; docs/calibration.md, "
                  "\"Cluster files\"), then\n`ringpipe cluster check FILE` and `ringpipe "
                  "plan --cluster-file FILE`")
        print(render(cluster.to_dict(), args.format, header))
        return 0
    document, source = _read(args.file)
    checked = read_cluster(document, None, source)
    out = checked.cluster.to_dict()
    if "measured" in document:
        out["measured"] = document["measured"]
    print(render(out, args.format, f"ok: {source}: {summary(checked.cluster)}"))
    return 0
