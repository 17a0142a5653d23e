"""``ringpipe calibrate --from-nccl-tests LOG... -o FILE [--base PRESET] [--nodes-in-log
N] [--json]``: a cluster file from nccl-tests logs (:mod:`ringpipe.measure.nccltests`).

Prints, per run of every log, the test, its ranks and nodes and, at its largest size,
the bus bandwidth the log reports against the one the fit gives (``--json``: the same
as ``logs[]`` with ``busbw_gbs`` and ``fitted_busbw_gbs``, and the links chosen), then
writes the file. A log that cannot be read (truncated, unknown, malformed) exits 2 with
one line naming the file and the line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ringpipe.cost.clusterfile.writer import dumps
from ringpipe.cost.hardware.cluster import CLUSTER_PRESETS
from ringpipe.measure.nccltests import cluster_from_runs, read_logs

HEADER = ("written by `ringpipe calibrate --from-nccl-tests`: the links fitted to the logs,\n"
          "the GPU numbers of a preset; [[collectives]] keeps the measured times, which\n"
          "the planner prefers. docs/calibration.md, \"From nccl-tests logs\"")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The nccl-tests flags of ``ringpipe calibrate``."""
    g = p.add_argument_group("from nccl-tests logs (instead of measuring this machine)")
    g.add_argument("--from-nccl-tests", nargs="+", metavar="LOG", default=None,
                   help="read these nccl-tests outputs (all_reduce_perf, all_gather_perf, "
                        "reduce_scatter_perf, alltoall_perf, sendrecv_perf)")
    g.add_argument("--base", choices=list(CLUSTER_PRESETS), default=None,
                   help="preset for the GPU numbers (default: by the GPU the logs name)")
    g.add_argument("--nodes-in-log", type=int, default=None, metavar="N",
                   help="nodes the logs' runs span (default: count the device lines' hosts)")


def refuse_mixed(args: argparse.Namespace) -> None:
    """The flags that measure this machine do not go with --from-nccl-tests, and the
    nccl-tests ones need it (ValueError: exit 2)."""
    if args.from_nccl_tests is None:
        for flag, value in (("--base", args.base), ("--nodes-in-log", args.nodes_in_log)):
            if value is not None:
                raise ValueError(f"{flag} goes with --from-nccl-tests")
        return
    for flag, given in (("--np", args.np is not None), ("--quick", args.quick),
                        ("--max-ranks", args.max_ranks is not None),
                        ("--backend", args.backend != "numba")):
        if given:
            raise ValueError(f"{flag} measures this machine; it does not go with "
                             "--from-nccl-tests")
    if args.nodes_in_log is not None and args.nodes_in_log < 1:
        raise ValueError(f"--nodes-in-log must be >= 1, got {args.nodes_in_log}")


def summary_line(doc: dict) -> str:
    """One line per run: test, ranks, nodes, logged and fitted busbw at the largest size."""
    gap = doc["fitted_busbw_gbs"] / doc["busbw_gbs"] - 1 if doc["busbw_gbs"] else 0.0
    return (f"{doc['log']}:{doc['line']}: {doc['test']}, {doc['ranks']} ranks on "
            f"{doc['nodes']} node(s), {doc['sizes']} sizes; busbw at {doc['largest_bytes']} B "
            f"{doc['busbw_gbs']:.2f} GB/s logged, {doc['fitted_busbw_gbs']:.2f} fitted "
            f"({gap:+.1%}); {doc['tier'].replace('_', '-')} link "
            f"{doc['link']['bandwidth_gbs']:.3g} GB/s, {doc['link']['latency_us']:.3g} us "
            "per step")


def run(args: argparse.Namespace, out: Path, write: object) -> int:
    """Read the logs, write ``out`` with ``write(out, text)``; 0 on success."""
    built = cluster_from_runs(read_logs(args.from_nccl_tests, args.nodes_in_log), args.base)
    write(out, dumps(built.document, HEADER))  # type: ignore[operator]
    if args.json:
        print(json.dumps({**built.as_json(), "output": str(out)}, indent=2))
        return 0
    for doc in built.as_json()["logs"]:
        print(summary_line(doc))
    for note in built.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {out}")
    return 0
