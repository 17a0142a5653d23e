"""``python -m ringpipe.mpi calibrate-probe``: the MPI rows of ``ringpipe calibrate``.

``ringpipe calibrate --np N`` starts this on N ranks itself
(:func:`ringpipe.measure.calibrate.mpi_probe.measure_mpi`); every rank measures
(:func:`~ringpipe.measure.calibrate.mpi_probe.probe`; with ``--nccl``, NCCL between the
ranks' GPUs: :func:`~ringpipe.measure.calibrate.nccl_probe.probe_nccl`) and rank 0
prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from ringpipe.environment import Environment
from ringpipe.measure.calibrate.mpi_probe import probe
from ringpipe.measure.calibrate.nccl_probe import probe_nccl
from ringpipe.validation import check_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The probe's options."""
    p.add_argument("--sizes", type=int, nargs="+", required=True,
                   help="message sizes in bytes")
    p.add_argument("--repeats", type=int, default=5, help="repeats per point (default 5)")
    p.add_argument("--nccl", action="store_true",
                   help="NCCL between the ranks' GPUs instead (calibrate --backend cupy)")


def prepare(args: argparse.Namespace, env: Environment) -> Callable[[], int]:
    """Check the options (alike on every rank); the job measures and prints rank 0's
    JSON line."""
    for size in args.sizes:
        check_int("--sizes", size, 1)
    check_int("--repeats", args.repeats, 1)

    def job() -> int:
        doc = probe_nccl(args.sizes, args.repeats) if args.nccl else \
            probe(args.sizes, args.repeats)
        if doc is not None:
            print(json.dumps(doc), flush=True)
        return 0

    return job
