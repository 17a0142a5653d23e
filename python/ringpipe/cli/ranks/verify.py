"""``python -m ringpipe.mpi verify``: a plan on MPI ranks, checked on rank 0.

Every rank builds the same plan, parameters (``init_params(config, seed)``) and batch
(``random_batch(config, B, seed + 1)``) from the command line
(:func:`~ringpipe.cli.args.plan.build_plan`), exactly as ``ringpipe verify`` does, and runs
its part with :func:`ringpipe.runtime.mpi.run_plan_mpi`. Rank 0 then compares the
gathered loss, outputs, full-shape gradients and counters

* with the single-device reference (:mod:`ringpipe.model.reference`), normwise, to the
  usual tolerance (1e-10 relative in float64, 1e-4 in float32), and
* with the in-process runtime (``plan.run(..., backend="numpy")``), **bit for bit**: both
  runtimes execute the same interpreter, worker, bucket layout and step tables, so any
  differing bit (or counter) is a failure, reported with the first differing tensors
  (:func:`~ringpipe.verify.training.compare_runs`).

The job exits 0 when both hold, 1 otherwise (every rank exits with rank 0's verdict).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ringpipe.cli.args.plan import build_plan, calibrated_cluster
from ringpipe.environment import Environment
from ringpipe.kernels.threads import environment_policy
from ringpipe.measure.step_time import format_timing, timed_prediction_mpi
from ringpipe.model.params import init_params
from ringpipe.mpi.loader import load_mpi
from ringpipe.mpi.mesh_comm import check_world_size
from ringpipe.mpi.placement import NodeLayout, check_placement, detect_nodes, format_placement
from ringpipe.plan.training import Plan
from ringpipe.runtime.device import DeviceSetup, select_device
from ringpipe.runtime.device import cupy_device_setup as device_setup
from ringpipe.verify import compare_runs, compare_to_reference, format_report, random_batch


@dataclass(frozen=True)
class _Setup:
    """What :func:`prepare_verify` found out before the job runs."""

    plan: Plan
    batch_size: int
    layout: NodeLayout
    warnings: list[str]
    device: DeviceSetup | None
    gpu: int | None
    blas_threads: int | None = None  # what OPENBLAS_NUM_THREADS & co. set on this rank


def prepare_verify(args: argparse.Namespace, env: Environment) -> Callable[[], int]:
    """Check the arguments and the placement on this rank (TypeError/ValueError, alike
    on every rank), pick this process's GPU with ``--device cupy``; returns the job,
    which returns the exit status (rank 0's verdict, broadcast)."""
    mpi = load_mpi()
    world = mpi.COMM_WORLD
    plan, batch_size = build_plan(args)
    check_world_size(plan.mesh, world.Get_size())
    layout = detect_nodes(world, mpi)
    warnings = check_placement(plan.mesh, layout.node_of_rank, args.allow_cross_node_tp)
    if args.allreduce == "nccl" and args.device == "cpu":
        raise ValueError("--allreduce nccl needs --device cupy")
    device = device_setup() if args.device == "cupy" else None
    gpu = None if device is None else select_device(device, layout.local_rank)
    setup = _Setup(plan, batch_size, layout, warnings, device, gpu, env.blas_threads)
    return lambda: _verify(args, setup, world)


def _verify(args: argparse.Namespace, setup: _Setup, world: Any) -> int:  # noqa: ANN401
    from ringpipe.runtime.mpi import run_plan_mpi

    plan = setup.plan
    gpus = world.allgather(setup.gpu)
    if world.Get_rank() == 0:
        for text in setup.warnings:
            print(f"warning: {text}", file=sys.stderr)
        if args.verbose and not args.json:
            print(format_placement(plan.mesh, setup.layout, gpus))
    params = init_params(plan.config, args.seed)
    batch = random_batch(plan.config, setup.batch_size, args.seed + 1)
    threads = environment_policy(setup.blas_threads)
    result = run_plan_mpi(plan, params, batch, world, device=setup.device, threads=threads,
                          collectives="nccl" if args.allreduce == "nccl" else "steps")
    calibrated = calibrated_cluster(args.cluster_file)
    timing = None if calibrated is None else timed_prediction_mpi(
        plan, params, batch, *calibrated, world, blas_threads=setup.blas_threads,
        device=setup.device, threads=threads,
        collectives="nccl" if args.allreduce == "nccl" else "steps")
    status = 0
    if world.Get_rank() == 0:
        assert result is not None
        report = compare_to_reference(plan, result, params, batch)
        diff = compare_runs(result, plan.run(params, batch, backend="numpy"))
        # on the CPU the runtimes must agree bit for bit; cuBLAS sums in its own order
        exact = setup.device is None
        ok = report.ok and (not exact or (diff.bitwise and diff.counters_equal))
        if args.json:
            placement = [{"rank": r, "node": setup.layout.node_of_rank[r], "gpu": gpus[r],
                          "coord": list(plan.mesh.coord(r))} for r in range(plan.mesh.world)]
            doc = {**report.as_json(), "ok": ok, "backend": "mpi", "device": args.device,
                   "nodes": setup.layout.nodes, "placement": placement,
                   "processes": world.Get_size(), "bitwise_inproc": diff.bitwise,
                   "counters_equal_inproc": diff.counters_equal,
                   "inproc_max_abs_diff": diff.max_abs_diff,
                   "inproc_differing": [list(item) for item in diff.differing[:10]],
                   **(timing or {})}
            print(json.dumps(doc, indent=2))
        else:
            print(format_report(plan, report, None if args.verbose else 8))
            print(f"# mpi: {world.Get_size()} processes; vs the in-process run: "
                  f"{diff.describe()}" + ("" if ok else "  MISMATCH"))
            if timing:
                print(format_timing(timing))
        status = 0 if ok else 1
    return int(world.bcast(status, root=0))
