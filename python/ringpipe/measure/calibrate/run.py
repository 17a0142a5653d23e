"""``ringpipe calibrate``'s phases: measure this machine, fit, and build the cluster file.

Phases (each reports one line of progress on ``progress``):

1. per-call overhead, all-core memory bandwidth, one operation's bandwidth by size,
   the cost of first-touching fresh memory (host only);
   after the float64 GEMM curve, the interpreter's cost per action
   (:mod:`ringpipe.measure.calibrate.probe`), an array operation's cost inside a step
   (:mod:`ringpipe.measure.calibrate.insitu`) and the step's bookkeeping copies
   (:mod:`ringpipe.measure.calibrate.bookkeeping`);
2. GEMM curve per dtype (:func:`ringpipe.measure.calibrate.compute.measure_gemm`), net of the
   bare call;
3. in-process point-to-point and all-reduce (ring and tree) for each group size
   2..N (:mod:`ringpipe.measure.calibrate.links`);
4. with ``nprocs``: the same between MPI processes (:mod:`ringpipe.measure.calibrate.mpi_probe`),
   skipped with a note when the ``mpi`` extra is missing.

Every phase runs under one :class:`~ringpipe.kernels.threads.ThreadPolicy` (by default
each of the ranks measured gets its fair share of the cores, as the runtimes give a
plan's ranks), recorded as ``blas_threads``, and under the runtimes' default
:class:`~ringpipe.kernels.heap.HeapPolicy` (freed memory stays in the process), so that
an operation's temporaries cost here what they cost in a step. Compute and in-process
communication are timed in CPU time; the share of a core a busy thread gets (at the
start and the end, averaged; and for P concurrent MPI ranks) is stored beside them, so
predictions can account for the machine's load.

The result is a cluster file (:mod:`ringpipe.cost.hardware.cluster` keys, which ``ringpipe plan
--cluster-file`` reads, plus ``[measured]``: :mod:`ringpipe.cost.clusterfile.measured`). The
headline keys are set from the measurements: ``peak_tflops`` is the float64 GEMM
curve's asymptote (``achievable_fraction = 1``), ``[kernels] saturation`` the mean of
its half-rate sizes (the planner's one-constant form of the same curve,
:mod:`ringpipe.cost.hardware.gpu`), ``memory_bandwidth_gbs`` the copy bandwidth,
``[intra_node]`` the point-to-point α-β (MPI's when measured), ``[kernels]`` one "SM"
with 1×1 tiles (no GPU wave quantisation) and the per-call overhead as launch overhead.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import MappingProxyType, ModuleType
from typing import Any

import numpy as np

from ringpipe.cost.hardware.calibration import Calibration
from ringpipe.cost.hardware.gemm_table import GemmTable
from ringpipe.kernels.heap import HeapPolicy, retained_heap
from ringpipe.kernels.threads import ThreadPolicy, limit_threads
from ringpipe.measure.calibrate import compute, links
from ringpipe.measure.calibrate.bookkeeping import measure_bookkeeping
from ringpipe.measure.calibrate.gpu_run import calibrate_gpu
from ringpipe.measure.calibrate.insitu import measure_step_call_overhead
from ringpipe.measure.calibrate.mpi_probe import measure_mpi, step_probe_plan
from ringpipe.measure.calibrate.probe import measure_action_overhead
from ringpipe.measure.timer import FULL, QUICK, Budget, cpu_share
from ringpipe.validation import check_int

BACKENDS = ("numpy", "numba", "cupy")
DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class CalibrateOptions:
    """What to measure: ``quick`` (coarse grids, short budgets), the collective
    ``backend`` of in-process ranks, ``nprocs`` MPI processes (None: no MPI rows),
    ``max_ranks`` the largest in-process group (default: ``nprocs`` or 4);
    ``threads`` the BLAS and Numba threads one rank computes with while measuring,
    recorded in the file as ``blas_threads`` (None: :meth:`policy`, the fair share of
    the cores among :attr:`ranks` ranks, what a plan of that many ranks runs with);
    ``hostfile`` (with ``backend="cupy"`` and ``nprocs``) spreads the NCCL probe over
    nodes; ``progress`` receives one line per phase."""

    quick: bool = False
    backend: str = "numba"
    nprocs: int | None = None
    max_ranks: int | None = None
    threads: ThreadPolicy | None = None
    hostfile: str | None = None
    progress: Callable[[str], None] = field(default=lambda _: None, compare=False,
                                            repr=False)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, "
                             f"got {self.backend!r}")
        if self.nprocs is not None:
            check_int("--np", self.nprocs, 2)
        if self.max_ranks is not None:
            check_int("max_ranks", self.max_ranks, 2)
        if self.threads is not None and not isinstance(self.threads, ThreadPolicy):
            raise TypeError(f"threads must be a ThreadPolicy, got {type(self.threads).__name__}")

    @property
    def ranks(self) -> int:
        """Largest in-process group measured."""
        return self.max_ranks or self.nprocs or 4

    @property
    def policy(self) -> ThreadPolicy:
        """The threads measured with: ``threads``, else the fair share of :attr:`ranks`."""
        return self.threads or ThreadPolicy.fair_share(self.ranks)


def _memory_gib() -> float:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return round(pages * size / 2**30, 2)
    except (ValueError, OSError, AttributeError):
        return 1.0


def _link_dict(fit: links.AlphaBeta) -> dict[str, Any]:
    return {"latency_us": fit.alpha * 1e6, "bandwidth_gbs": fit.bandwidth / 1e9,
            "sizes": list(fit.sizes), "seconds": list(fit.seconds)}


def _allreduce_row(runtime: str, algorithm: str, ranks: int,
                   fit: links.AlphaBeta) -> dict[str, Any]:
    step = links.step_link(fit, algorithm, ranks)
    return {"runtime": runtime, "algorithm": algorithm, "ranks": ranks,
            "latency_us": step.latency * 1e6, "bandwidth_gbs": step.bandwidth / 1e9,
            "fit_alpha_us": fit.alpha * 1e6, "fit_beta_ns_per_byte": fit.beta * 1e9,
            "sizes": list(fit.sizes), "seconds": list(fit.seconds)}


def _device(xp: ModuleType, options: CalibrateOptions, budget: Budget) -> dict[str, Any]:
    """Phases 1 and 2: call overhead, bandwidths, transcendentals, GEMM curves."""
    overhead = compute.measure_call_overhead(xp, budget)
    bandwidth = compute.measure_bandwidth(xp, (64 if options.quick else 256) << 20, budget)
    op_bw = compute.measure_op_bandwidth(xp, compute.OP_BYTES, budget)
    transcendental = compute.measure_transcendental(xp, budget)
    fresh = compute.measure_fresh_memory() if xp is np else 0.0
    out: dict[str, Any] = {
        "call_overhead_us": overhead * 1e6, "memory_bandwidth_gbs": bandwidth / 1e9,
        "transcendental_ns": transcendental * 1e9, "fresh_memory_ns_per_byte": fresh * 1e9,
        "op_bandwidth": {"bytes": [b for b, _ in op_bw], "gbs": [r / 1e9 for _, r in op_bw]},
        "gemm": {}}
    sizes = compute.QUICK_SIZES if options.quick else compute.FULL_SIZES
    for dtype in DTYPES:
        options.progress(f"[2/4] GEMM curve, {dtype}: {len(sizes) ** 3} shapes")
        g = compute.measure_gemm(xp, dtype, sizes, budget)
        out["gemm"][dtype] = {
            "peak_gflops": g.curve.peak_flops / 1e9, "m0": g.curve.m0, "n0": g.curve.n0,
            "k0": g.curve.k0, "fixed_us": g.curve.fixed * 1e6,
            "best_gflops": g.best_flops / 1e9, "shapes": [list(x) for x in g.shapes],
            "seconds": list(g.seconds)}
        if dtype == "float64" and xp is np:
            table = GemmTable.from_measurements(g.shapes, g.seconds, overhead, g.curve)
            out["action_overhead_us"] = 1e6 * measure_action_overhead(
                g.curve, overhead, bandwidth, tuple(op_bw), transcendental, budget, table,
                options.policy.blas)
            measured = Calibration(
                cores=1, blas_threads=options.policy.blas, call_overhead=overhead,
                memory_bandwidth=bandwidth, gemm=MappingProxyType({dtype: g.curve}),
                gemm_tables=MappingProxyType({} if table is None else {dtype: table}),
                op_bandwidth=tuple(op_bw), transcendental=transcendental,
                action_overhead=out["action_overhead_us"] * 1e-6)
            step_call = measure_step_call_overhead(measured, budget)
            out["step_call_overhead_us"] = step_call * 1e6
            per_tensor, copy = measure_bookkeeping(
                replace(measured, step_call_overhead=step_call), budget)
            out["tensor_overhead_us"], out["copy_bandwidth_gbs"] = per_tensor * 1e6, copy / 1e9
    return out


def _links(options: CalibrateOptions, budget: Budget, notes: list[str]
           ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any], float | None]:
    """Phases 3 and 4: point-to-point and all-reduce rows, the MPI CPU share, and the
    seconds of the MPI probe plan's step (None without MPI rows)."""
    nbytes = links.QUICK_BYTES if options.quick else links.FULL_BYTES
    options.progress(f"[3/4] in-process point-to-point and all-reduce, groups "
                     f"2..{options.ranks}")
    fit = links.measure_inproc_p2p(nbytes, budget)
    _note_degenerate(fit, "in-process point-to-point", notes)
    p2p = {"inproc": _link_dict(fit)}
    backend = options.backend
    allreduce = []
    for ranks in range(2, options.ranks + 1):
        for algorithm in ("ring", "tree"):
            fit = links.measure_inproc_allreduce(algorithm, ranks, nbytes, backend, budget)
            _note_degenerate(fit, f"in-process {algorithm} all-reduce on {ranks} ranks",
                             notes)
            allreduce.append(_allreduce_row("inproc", algorithm, ranks, fit))
    shares: dict[str, Any] = {}
    if options.nprocs is None:
        notes.append("no --np: MPI rows not measured")
        options.progress("[4/4] MPI: skipped (no --np)")
        return p2p, allreduce, shares, None
    options.progress(f"[4/4] MPI point-to-point and all-reduce on {options.nprocs} processes")
    doc, why = measure_mpi(options.nprocs, nbytes, 3 if options.quick else 10)
    if doc is None:
        notes.append(str(why))
        options.progress(f"      {why}")
        return p2p, allreduce, shares, None
    shares.update(mpi=doc["cpu_share"], mpi_processes=options.nprocs)
    sz, sec = zip(*doc["p2p"], strict=True)
    fit = links.fit_alpha_beta(sz, sec)
    _note_degenerate(fit, "MPI point-to-point", notes)
    p2p["mpi"] = _link_dict(fit)
    for row in doc["allreduce"]:
        sz, sec = zip(*row["points"], strict=True)
        fit = links.fit_alpha_beta(sz, sec)
        _note_degenerate(fit, f"MPI {row['algorithm']} all-reduce on {row['ranks']} ranks",
                         notes)
        allreduce.append(_allreduce_row("mpi", row["algorithm"], row["ranks"], fit))
    return p2p, allreduce, shares, doc["plan_step"]["seconds"]


def _note_degenerate(fit: links.AlphaBeta, what: str, notes: list[str]) -> None:
    if fit.degenerate:
        notes.append(f"{what}: times did not grow with message size (noise, or more "
                     "processes than cores); bandwidth bounded by the largest message")


def calibrate(options: CalibrateOptions) -> tuple[dict[str, Any], list[str]]:
    """Measure (module docstring) under ``options.policy``'s thread counts; returns the
    cluster-file dict and notes. ``backend="cupy"`` measures the GPU instead
    (:mod:`ringpipe.measure.calibrate.gpu_run`; ValueError when there is none)."""
    if options.backend == "cupy":
        return calibrate_gpu(options)
    with limit_threads(options.policy), retained_heap(HeapPolicy()):
        return _calibrate(options)


def _calibrate(options: CalibrateOptions) -> tuple[dict[str, Any], list[str]]:
    start = time.perf_counter()
    budget = QUICK if options.quick else FULL
    xp = np
    notes: list[str] = []
    options.progress("[1/4] per-call overhead and memory bandwidth")
    first_share = cpu_share()
    measured = _device(xp, options, budget)
    p2p, allreduce, shares, plan_step = _links(options, budget, notes)
    shares["inproc"] = (first_share + cpu_share()) / 2
    main_link = p2p.get("mpi", p2p["inproc"])
    link = {"bandwidth_gbs": main_link["bandwidth_gbs"], "latency_us": main_link["latency_us"]}
    f64 = measured["gemm"]["float64"]
    data = {
        "name": f"calibrated-{platform.node() or 'host'}",
        "device": "cpu",
        "nodes": 1,
        "gpus_per_node": options.nprocs or options.ranks,
        "peak_tflops": f64["peak_gflops"] / 1e3,
        "memory_gib": _memory_gib(),
        "memory_bandwidth_gbs": measured["memory_bandwidth_gbs"],
        "achievable_fraction": 1.0,
        "intra_node": dict(link),
        "inter_node": dict(link),
        "kernels": {"sm_count": 1, "tile_m": 1, "tile_n": 1, "flash_fraction": 1.0,
                    "launch_overhead_us": measured["call_overhead_us"],
                    "saturation": (f64["m0"] + f64["n0"] + f64["k0"]) / 3},
        "measured": {
            "host": platform.node(), "cores": os.cpu_count() or 1,
            "blas_threads": options.policy.blas,
            "backend": options.backend,
            "quick": options.quick, "seconds_taken": round(time.perf_counter() - start, 2),
            **measured, "cpu_share": shares, "p2p": p2p, "allreduce": allreduce,
        },
    }
    if plan_step is not None:
        data["measured"]["mpi_step_overhead_us"] = 1e6 * mpi_step_overhead(data, plan_step)
    return data, notes


def mpi_step_overhead(data: dict[str, Any], seconds: float) -> float:
    """What one MPI step of the probe plan (:func:`~ringpipe.measure.calibrate.mpi_probe.
    step_probe_plan`), measured at ``seconds``, costs beyond what the cluster-file dict
    ``data``'s other constants predict for it (at least 0)."""
    from ringpipe.cost.clusterfile.load import read_cluster
    from ringpipe.cost.executable.predict import PlanModel

    loaded = read_cluster(data)
    cluster, cal = loaded.calibrated()
    plan = step_probe_plan()
    predicted = PlanModel(cluster, cal).predict(plan, plan.microbatches, "mpi",
                                                blas_threads=cal.blas_threads).step_time
    return max(seconds - predicted, 0.0)
