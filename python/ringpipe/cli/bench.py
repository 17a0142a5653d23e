"""``ringpipe bench``: the headline performance figures, each against its target.

    ringpipe bench [--quick] [--json] [--skip-plan] [--skip-mpi]

Measures, in one process, every row of the performance table (issue 16) as a ratio
against a baseline timed in the same run (:mod:`ringpipe.measure.bench`): the all-reduce
against the all-core memory bound (and the old single-threaded ``np.add`` baseline, reported
only), the small-message speed-ups over the NumPy executor (one-shot and
persistent), the all-to-all against a NumPy block transpose (reported, with its
busbw), the 1F1B schedule path, the TP2×PP4 plan against the single-device
reference (min and median of several runs), and, when the mpi extra is installed,
ringpipe's MPI ring and tree against ``MPI_Allreduce``. ``--quick`` uses fewer rounds
and sizes and finishes in under a minute on two cores.

Progress goes to stderr, one line as each of the four phases starts and ends. Each
phase is watched for other work (:mod:`ringpipe.measure.machine_load`: other processes'
share of the CPU and steal, from ``/proc/stat``, and the load average): a target missed
while the machine was busy is shown as ``busy``, not as a miss, with the load that
excuses it. Exit 0 when every target measured on a quiet machine is met, 1 when one
is missed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass

from ringpipe.measure import all_to_all as perf_exchange
from ringpipe.measure import bench as perf_probe
from ringpipe.measure import bench_mpi as perf_mpi
from ringpipe.measure.bench import MIB, Row, at_least, at_most
from ringpipe.measure.machine_load import between, sample

DESCRIPTION = (
    "Measure ringpipe's headline performance figures, each as a ratio against a "
    "baseline timed in the same run, and print each with its target: all-reduce "
    "against the all-core memory bound, small-message speed-ups over the NumPy "
    "executor, the 1F1B schedule path, a TP2 x PP4 plan against the single-device "
    "reference and, with the mpi extra, the MPI ring and tree against MPI_Allreduce. "
    "Progress goes to stderr. A target missed while other processes kept the machine "
    "busy (load average, steal and their CPU share, from /proc) is reported as busy, not "
    "as a miss. Exit 0 when every target measured on a quiet machine is met, 1 when one "
    "is missed, 2 on bad arguments.")


@dataclass(frozen=True)
class BenchSettings:
    """How hard each measurement tries (``--quick`` or the full run)."""

    rounds: int
    large_sizes: tuple[int, ...]
    plan_model: tuple[int, int, int, int, int]  # layers, hidden, seq, batch, micro-batches
    plan_runs: int
    mpi_iters: int
    mpi_reps: int
    oversubscribe: bool = True  # also MPI jobs with more ranks than cores (report only)


FULL = BenchSettings(7, (1 * MIB, 16 * MIB, 64 * MIB), (8, 512, 128, 16, 8), 5, 10, 9)
QUICK = BenchSettings(3, (16 * MIB,), (8, 512, 128, 16, 8), 3, 3, 5, oversubscribe=False)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` subcommand to ``subparsers``."""
    p = subparsers.add_parser("bench", help="measure the headline performance figures",
                              description=DESCRIPTION)
    p.add_argument("--quick", action="store_true",
                   help="fewer rounds and sizes (under a minute on 2 cores)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--skip-plan", action="store_true", help="leave out the plan row")
    p.add_argument("--skip-mpi", action="store_true", help="leave out the MPI rows")
    p.set_defaults(handler=run)


def collective_rows(s: BenchSettings) -> list[Row]:
    """All-reduce vs the bounds (8 ranks) and the small-message speed-ups. The bound's
    target (<= 1.2x) applies where the ranks' buffers exceed the last-level cache;
    where they fit, the bound is the cache's bandwidth and the ratio is reported."""
    rows = []
    cache = perf_probe.last_level_cache_bytes()
    for size in s.large_sizes:
        for alg in ("ring", "tree"):
            r = perf_probe.all_reduce_vs_bound(alg, 8, size, s.rounds)
            detail = dict(ms=r.seconds * 1e3, bound_ms=r.allcore_bound_s * 1e3,
                          allcore_gbps=r.allcore_gbps, np_add_gbps=r.np_add_gbps)
            measure = f"{alg} all-reduce 8 x {size // MIB} MiB f32 / all-core bound"
            if cache is not None and 8 * size <= cache:  # the bound is cache bandwidth
                rows.append(Row(measure, r.ratio_allcore, "x", f"report only (in the "
                                f"{cache // MIB} MiB cache)", None, detail))
            else:
                rows.append(at_most(measure, r.ratio_allcore, 1.2, **detail))
            rows.append(Row(f"{alg} all-reduce 8 x {size // MIB} MiB f32 / 1-thread np.add",
                            r.ratio_np_add, "x", "report only (not a bound)", None, detail))
    for alg, keep in (("ring", 53), ("tree", 30)):
        numpy_t, one_shot, persistent = perf_probe.small_message_speedups(
            alg, rounds=max(s.rounds, 9))  # cheap rounds; microseconds are noisy
        rows.append(at_least(f"{alg} one-shot all_reduce 8 x 4 KiB, numba vs numpy",
                             one_shot, 10, numpy_us=numpy_t * 1e6))
        rows.append(at_least(f"{alg} persistent all_reduce 8 x 4 KiB, numba vs numpy",
                             persistent, keep, numpy_us=numpy_t * 1e6))
        inplace_t, out_t = perf_probe.out_of_place_vs_in_place(alg, rounds=max(s.rounds, 9))
        rows.append(at_most(f"{alg} all_reduce 8 x 64 KiB, out-of-place / in-place",
                            out_t / inplace_t, 2.0, in_place_us=inplace_t * 1e6,
                            out_of_place_us=out_t * 1e6))
    a2a = perf_exchange.all_to_all_vs_transpose(8, 1 * MIB, rounds=s.rounds)
    rows.append(Row("pairwise all-to-all 8 x 1 MiB f32 / NumPy block transpose", a2a.ratio,
                    "x", "report only (no target yet)" if a2a.wrong == 0 else "#wrong = 0",
                    None if a2a.wrong == 0 else False,
                    dict(ms=a2a.seconds * 1e3, transpose_ms=a2a.transpose_seconds * 1e3,
                         busbw_gbps=a2a.busbw_gbps, wrong=a2a.wrong)))
    return rows


def schedule_rows(s: BenchSettings) -> list[Row]:
    """The 1F1B path at p=64, m=1024, and its linearity: time per action at p=128,
    m=2048 (4x the actions) against p=64, m=1024. Both working sets exceed the caches;
    against p=16, m=256, whose arrays fit in L2, the ratio also measures the cache
    hierarchy (1.4-1.6x here), so that one is reported only."""
    big = perf_probe.schedule_path_seconds(64, 1024, s.rounds)
    huge = perf_probe.schedule_path_seconds(128, 2048, s.rounds)
    small = perf_probe.schedule_path_seconds(16, 256, 3 * s.rounds)
    per_unit = big / (64 * 1024)
    return [at_most("1F1B p=64 m=1024 generate+comms+validate+simulate", big, 0.3, " s"),
            at_most("1F1B per-(p*m) time, p=128 m=2048 vs p=64 m=1024 (linear)",
                    (huge / (128 * 2048)) / per_unit, 1.5, huge_s=huge),
            Row("1F1B per-(p*m) time, p=64 m=1024 vs p=16 m=256 (in-cache)",
                per_unit / (small / (16 * 256)), "x", "report only (cache effects)", None)]


def plan_rows(s: BenchSettings) -> list[Row]:
    """TP2×PP4 1F1B ``Plan.run`` vs the reference: the wall-clock median's target, the
    minimum and the CPU-time (work) ratios beside it."""
    layers, hidden, seq, batch, micro = s.plan_model
    r = perf_probe.plan_vs_reference(layers, hidden, seq, batch, micro, s.plan_runs)
    model = f"L{layers} H{hidden} S{seq} B{batch}"
    return [at_most(f"TP2 x PP4 1F1B plan / reference ({model}), wall, median of "
                    f"{s.plan_runs}", r.wall_median, 1.25, wall_min=r.wall_min,
                    cpu_min=r.cpu_min, cpu_median=r.cpu_median),
            Row(f"TP2 x PP4 1F1B plan / reference ({model}), CPU time, median of "
                f"{s.plan_runs}", r.cpu_median, "x", "report only (work ratio)", None,
                dict(cpu_min=r.cpu_min))]


def mpi_rows(s: BenchSettings) -> list[Row]:
    """MPI ring and tree against ``MPI_Allreduce``: at 16 MiB the ring <= 0.9x (one-shot
    and persistent); at 4 KiB the persistent handles <= 1.2x. The 4 KiB one-shot rows
    are reported without a target: each call first agrees on its arguments with an
    ``Allgather``, a second collective round that ``MPI_Allreduce`` does not pay
    (``check=False`` or ``all_reduce_init`` skip it). The exchange floors (rounds x one
    dependent exchange, :mod:`ringpipe.measure.mpi_allreduce`) are reported beside them. With
    more ranks than cores every row is reported only: busy-polling ranks then share
    cores and the times measure the OS scheduler."""
    rows = []
    cores = os.cpu_count() or 1
    for nprocs in (2, 4):
        if nprocs > cores and not s.oversubscribe:
            continue  # reported only anyway: --quick leaves it out
        ratios = perf_mpi.mpi_ratios(nprocs, 4096, 16 * MIB, s.mpi_iters, s.mpi_reps)
        for (size, alg), ratio in ratios.items():
            if alg.endswith("floor") and size != 4096:
                continue  # a latency floor; large messages are bandwidth-bound
            label = "16 MiB" if size == 16 * MIB else "4 KiB"
            measure = f"MPI {alg} / MPI_Allreduce, {label}, {nprocs} ranks"
            if nprocs > cores:
                rows.append(Row(measure, ratio, "x", f"report only ({nprocs} ranks > "
                                f"{cores} cores)", None))
            elif alg.endswith("floor"):
                rows.append(Row(measure, ratio, "x", "report only (step-table floor)",
                                None))
            elif size == 16 * MIB:
                rows.append(at_most(measure, ratio, 0.9 if alg.startswith("ring") else 1.2))
            elif alg.endswith("persistent"):
                rows.append(at_most(measure, ratio, 1.2))
            else:
                rows.append(Row(measure, ratio, "x", "report only (+ agreement round)",
                                None))
    return rows


def _met(r: Row) -> str:
    if r.detail.get("busy"):
        return "busy"
    return "-" if r.met is None else ("yes" if r.met else "NO")


def _format(rows: list[Row]) -> str:
    width = max(len(r.measure) for r in rows)
    lines = [f"{'measure':<{width}}  {'value':>9}  {'target':<26} met"]
    for r in rows:
        lines.append(f"{r.measure:<{width}}  {r.value:>8.3g}{r.unit.strip() or ' ':<1}  "
                     f"{r.target:<26} {_met(r)}")
    return "\n".join(lines)


#: The phases: name, what they measure, the function that measures them.
PHASES = (("collectives", "all-reduce vs the all-core bound, small-message speed-ups",
           collective_rows),
          ("schedule", "the 1F1B schedule path", schedule_rows),
          ("plan", "TP2 x PP4 plan vs the single-device reference", plan_rows),
          ("mpi", "MPI ring and tree vs MPI_Allreduce", mpi_rows))

#: Phases ``--quick`` leaves out once an earlier phase found the machine busy: eight
#: in-process ranks sharing cores with other work took 12 minutes instead of 20 s
#: here, and would only measure the scheduler.
SKIP_WHEN_BUSY = ("plan",)


def _excused(r: Row) -> Row:
    """A missed target measured while the machine was busy: no verdict, marked busy."""
    if r.met is not False:
        return r
    return Row(r.measure, r.value, r.unit, r.target, None, {**r.detail, "busy": True})


def run(args: argparse.Namespace) -> int:
    """Measure phase by phase with progress on stderr, print the table (or JSON); 0 when
    every target measured on a quiet machine is met, else 1."""
    s = QUICK if args.quick else FULL
    cores = args.env.cpu_count
    notes = []
    skip = {"plan"} if args.skip_plan else set()
    if args.skip_mpi:
        skip.add("mpi")
        notes.append("MPI rows skipped (--skip-mpi)")
    elif not perf_mpi.mpi_available():
        skip.add("mpi")
        notes.append("MPI rows skipped: mpi4py or mpiexec not found (pip install "
                      "'ringpipe[mpi]')")
    phases = [ph for ph in PHASES if ph[0] not in skip]
    rows: list[Row] = []
    busy: dict[str, str] = {}
    begun = time.perf_counter()
    for i, (name, what, measure) in enumerate(phases, 1):
        if args.quick and busy and name in SKIP_WHEN_BUSY:
            _progress(f"bench [{i}/{len(phases)}] {name}: skipped, the machine is busy")
            notes.append(f"{name} rows skipped (--quick on a busy machine: they would take "
                         "minutes and time the scheduler); rerun on a quiet machine")
            continue
        _progress(f"bench [{i}/{len(phases)}] {name}: {what} ...")
        start, t0 = sample(), time.perf_counter()
        got = measure(s)
        load = between(start, sample(), cores)
        if load is not None and load.busy:
            busy[name] = load.describe()
            got = [_excused(r) for r in got]
        _progress(f"bench [{i}/{len(phases)}] {name}: {len(got)} rows in "
                  f"{time.perf_counter() - t0:.1f} s"
                  + (f"; machine busy ({busy[name]})" if name in busy else ""))
        rows += got
    _progress(f"bench: done in {time.perf_counter() - begun:.1f} s")
    excused = sum(bool(r.detail.get("busy")) for r in rows)
    if busy:
        notes.append(f"the machine was busy during {', '.join(busy)} ("
                     + "; ".join(f"{k}: {v}" for k, v in busy.items()) + f"): {excused} "
                     "missed target(s) marked busy, not counted; rerun on a quiet machine")
    ok = all(r.met is not False for r in rows)
    if args.json:
        print(json.dumps({"quick": args.quick, "ok": ok, "notes": notes, "busy": busy,
                          "rows": [asdict(r) for r in rows]}, indent=2))
    else:
        print(_format(rows))
        for note in notes:
            print(f"# {note}")
    return 0 if ok else 1


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
