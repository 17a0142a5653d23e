"""``ringpipe calibrate``: measure this machine and write a cluster file.

``ringpipe calibrate --output FILE [--np N] [--backend numpy|numba|cupy] [--quick]``
(or ``--from-nccl-tests LOG...``: :mod:`ringpipe.cli.calibrate.nccl`)
measures the GEMM curve, memory bandwidth, per-call overhead and the α-β of
point-to-point transfers and all-reduces (in-process groups up to N; MPI processes when
``--np`` is given), writes them as a TOML cluster file that ``ringpipe plan
--cluster-file`` and ``ringpipe verify --cluster-file`` read, and prints a summary
(``--json``: the file's content as JSON). Progress goes to stderr, one line per phase.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from ringpipe.cli.calibrate import nccl as calibrate_nccl
from ringpipe.cost.clusterfile.writer import dumps
from ringpipe.kernels.threads import ThreadPolicy
from ringpipe.measure.calibrate.run import BACKENDS, CalibrateOptions, calibrate
from ringpipe.measure.calibrate.summary import summary

#: The comment on top of the file written; it cites the docs page on the format.
HEADER = ("written by `ringpipe calibrate`; edit the headline keys for another cluster:\n"
          "docs/calibration.md, sections \"Plan for your own cluster\",\n"
          "\"What the file contains\" and \"Editing it for a cluster you cannot run on\"")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``calibrate`` subcommand."""
    p = subparsers.add_parser("calibrate", help="measure this machine; write a cluster file")
    p.add_argument("--output", "-o", required=True, help="cluster file to write (TOML)")
    p.add_argument("--np", type=int, default=None, dest="np",
                   help="also measure MPI between NP processes (starts mpiexec)")
    p.add_argument("--max-ranks", type=int, default=None,
                   help="largest in-process group measured (default: --np or 4)")
    p.add_argument("--backend", choices=BACKENDS, default="numba",
                   help="numpy/numba: CPU (NumPy BLAS); cupy: the GPU (cuBLAS GEMM curves "
                        "per dtype, HBM, launch overhead; with --np, NCCL between GPUs)")
    p.add_argument("--hostfile", default=None,
                   help="with --backend cupy --np: Hydra hostfile, to measure NCCL across "
                        "nodes")
    p.add_argument("--quick", action="store_true", help="coarse grids (< 60 s on 2 cores)")
    p.add_argument("--json", action="store_true", help="print the file's content as JSON")
    calibrate_nccl.add_arguments(p)
    p.set_defaults(handler=run)


def check_output(out: Path) -> None:
    """Refuse an ``--output`` that could not be written, before anything is measured: not
    ``.toml``, an existing non-regular file (a directory, a FIFO), a missing directory,
    or one where a file cannot be created (proved by creating and removing one)."""
    if out.suffix.lower() != ".toml":
        raise ValueError(f"--output must be a .toml file, got {str(out)!r}")
    if out.exists() and not out.is_file():
        raise ValueError(f"--output: {str(out)!r} exists and is not a regular file")
    if not out.parent.is_dir():
        raise ValueError(f"--output: directory {str(out.parent)!r} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"):
            pass
    except OSError as exc:
        raise ValueError(f"--output: cannot write in {str(out.parent)!r}: "
                         f"{exc.strerror or exc}") from None


def write_output(out: Path, text: str) -> None:
    """Write ``text`` to ``out`` atomically (a temporary file in the same directory, then
    a rename), so a failure never leaves a truncated cluster file."""
    umask = os.umask(0)
    os.umask(umask)
    mode = out.stat().st_mode & 0o777 if out.is_file() else 0o666 & ~umask
    temp = None
    try:
        with tempfile.NamedTemporaryFile("w", dir=out.parent, prefix=f".{out.name}.",
                                         suffix=".tmp", delete=False, encoding="utf-8") as f:
            temp = f.name
            f.write(text)
        os.chmod(temp, mode)  # mkstemp makes 0600; keep the mode a plain write would give
        os.replace(temp, out)
    except OSError as exc:
        if temp is not None and os.path.exists(temp):
            os.unlink(temp)
        raise ValueError(f"--output: cannot write {str(out)!r}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    """Calibrate and write ``--output``; 0 on success."""
    out = Path(args.output)
    calibrate_nccl.refuse_mixed(args)
    check_output(out)
    if args.from_nccl_tests is not None:  # ringpipe.cli.calibrate.nccl
        return calibrate_nccl.run(args, out, write_output)
    if args.hostfile is not None and (args.np is None or args.backend != "cupy"):
        raise ValueError("--hostfile goes with --backend cupy --np N")
    options = CalibrateOptions(quick=args.quick, backend=args.backend, nprocs=args.np,
                               max_ranks=args.max_ranks, hostfile=args.hostfile,
                               progress=lambda line: print(line, file=sys.stderr, flush=True))
    options = replace(options, threads=ThreadPolicy.fair_share(
        options.ranks, requested=args.env.blas_threads))
    data, notes = calibrate(options)
    write_output(out, dumps(data, HEADER))
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(summary(data, notes))
        print(f"wrote {out}")
    return 0
