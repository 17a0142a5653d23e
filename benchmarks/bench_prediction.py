"""Predicted versus measured step time of executable plans, on this machine.

The benchmark calibrates this machine (``ringpipe calibrate --quick --np 2``), then runs
:data:`PLANS` — TP, PP and DP of 2, the schedules gpipe, 1f1b, zb-h1, zb-v and
interleaved-1f1b, 2 to 8 micro-batches, hidden sizes 32 to 256 (8×) — twice:

* through MPI with 2 processes: ``ringpipe verify --backend mpi --np 2 ...
  --cluster-file FILE --json`` (one mpiexec job per plan; its ``step_time_s`` is the
  best of 5 timed steps after a warm-up, ``predicted_step_time_s`` the cost model's);
* in-process (:func:`ringpipe.measure.step_time.timed_prediction`, numba all-reduce),
  also comparing CPU times (the cost model with the machine's load taken out).

Per plan it prints predicted and measured seconds and the error (predicted/measured -
1); over all plans the mean absolute error and Spearman's rank correlation. Targets
(issue 13): MAE ≤ 20%, rank correlation ≥ 0.8. BLAS runs one thread per process
(``OPENBLAS_NUM_THREADS=1``, what :mod:`ringpipe.mpi.launch` gives 2 ranks on 2
cores), in calibration and runs alike.

Run: ``python benchmarks/bench_prediction.py`` (add ``--json`` for machine-readable
output), or ``pytest benchmarks/bench_prediction.py --benchmark-only``, which runs the
script in a subprocess and puts the figures in ``extra_info``.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # run as a script: one BLAS thread, set before NumPy loads
    for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

#: (tp, pp, dp, schedule, microbatches, hidden); 4 layers, 4 heads, sequence 32.
PLANS = (
    (1, 2, 1, "gpipe", 4, 64),
    (1, 2, 1, "1f1b", 8, 128),
    (1, 2, 1, "zb-h1", 4, 256),
    (1, 2, 1, "interleaved-1f1b", 4, 64),
    (1, 2, 1, "zb-v", 4, 32),
    (2, 1, 1, "1f1b", 2, 128),
    (2, 1, 1, "gpipe", 4, 256),
    (1, 1, 2, "1f1b", 2, 32),
    (1, 1, 2, "gpipe", 4, 128),
)


def plan_argv(tp: int, pp: int, dp: int, schedule: str, m: int, hidden: int) -> list[str]:
    """``ringpipe verify`` plan arguments of one benchmark plan."""
    return ["--tp", str(tp), "--pp", str(pp), "--dp", str(dp), "--schedule", schedule,
            "--microbatches", str(m), "--hidden", str(hidden), "--layers", "4",
            "--heads", "4", "--seq", "32"]


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation: Pearson's r of the ranks (no ties expected)."""
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def summarise(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean absolute error and rank correlation of predicted vs measured."""
    pred = [r["predicted_s"] for r in rows]
    meas = [r["measured_s"] for r in rows]
    return {"mean_abs_error": float(np.mean([abs(p / m - 1) for p, m in zip(pred, meas,
                                                                             strict=True)])),
            "rank_correlation": spearman(pred, meas), "plans": len(rows)}


def run_mpi(cluster_file: str, plan: tuple) -> dict[str, Any]:
    """One plan through ``ringpipe verify --backend mpi --np 2``."""
    cmd = [sys.executable, "-m", "ringpipe", "verify", "--backend", "mpi", "--np", "2",
           *plan_argv(*plan), "--cluster-file", cluster_file, "--json"]
    job = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    start = job.stdout.find("{")
    if job.returncode != 0 or start < 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({job.returncode}): {job.stderr[-500:]}")
    doc = json.loads(job.stdout[start:])
    return {"measured_s": doc["step_time_s"], "predicted_s": doc["predicted_step_time_s"],
            "ok": doc["ok"]}


def run_inproc(cluster_file: str, plan: tuple) -> dict[str, Any]:
    """One plan in-process (numba all-reduce)."""
    from ringpipe.cli.args.plan import add_plan_arguments, build_plan
    from ringpipe.cost.clusterfile.load import load_cluster_file
    from ringpipe.measure.step_time import timed_prediction
    from ringpipe.model.params import init_params
    from ringpipe.verify.training import random_batch

    parser = argparse.ArgumentParser()
    add_plan_arguments(parser)
    args = parser.parse_args(plan_argv(*plan))
    p, batch_size = build_plan(args)
    doc = timed_prediction(p, init_params(p.config, 0), random_batch(p.config, batch_size, 1),
                           *load_cluster_file(cluster_file).calibrated(), backend="numba")
    return {"measured_s": doc["step_time_s"], "predicted_s": doc["predicted_step_time_s"],
            "measured_cpu_s": doc["step_cpu_time_s"],
            "predicted_cpu_s": doc["predicted_cpu_time_s"]}


def benchmark_prediction(progress: bool = True) -> dict[str, Any]:
    """Calibrate, run every plan both ways; the per-plan rows and the summaries."""
    from ringpipe.cost.clusterfile.writer import dumps
    from ringpipe.measure.calibrate.run import CalibrateOptions, calibrate

    def say(line: str) -> None:
        if progress:
            print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "local.toml")
        data, notes = calibrate(CalibrateOptions(quick=True, nprocs=2, progress=say))
        Path(path).write_text(dumps(data))
        out: dict[str, Any] = {"calibration_seconds": data["measured"]["seconds_taken"],
                               "notes": notes}
        for runtime, runner in (("mpi", run_mpi), ("inproc", run_inproc)):
            rows = []
            for plan in PLANS:
                row = {"plan": " ".join(plan_argv(*plan)), **runner(path, plan)}
                row["error"] = row["predicted_s"] / row["measured_s"] - 1
                say(f"{runtime:6s} {row['plan']}: predicted {row['predicted_s']:.4f} s, "
                    f"measured {row['measured_s']:.4f} s, error {row['error']:+.1%}")
                rows.append(row)
            out[runtime] = {"rows": rows, **summarise(rows)}
        cpu_rows = [{"predicted_s": r["predicted_cpu_s"], "measured_s": r["measured_cpu_s"]}
                    for r in out["inproc"]["rows"]]
        out["inproc_cpu_time"] = summarise(cpu_rows)
    return out


def format_table(result: dict[str, Any]) -> str:
    """The human-readable report."""
    lines = [f"# calibration (quick) took {result['calibration_seconds']:.1f} s"]
    for runtime in ("mpi", "inproc"):
        r = result[runtime]
        lines.append(f"\n## {runtime}: {r['plans']} plans" + (" (2 processes)"
                                                             if runtime == "mpi" else ""))
        lines.append(f"{'plan':96s} {'predicted s':>12s} {'measured s':>11s} {'error':>8s}")
        for row in r["rows"]:
            lines.append(f"{row['plan']:96s} {row['predicted_s']:12.4f} "
                         f"{row['measured_s']:11.4f} {row['error']:+8.1%}")
        lines.append(f"mean absolute error {r['mean_abs_error']:.1%} (target <= 20%); "
                     f"rank correlation {r['rank_correlation']:.3f} (target >= 0.8)")
    c = result["inproc_cpu_time"]
    lines.append(f"in-process CPU time (load taken out): mean absolute error "
                 f"{c['mean_abs_error']:.1%}, rank correlation {c['rank_correlation']:.3f}")
    return "\n".join(lines)


def test_prediction_accuracy(benchmark: Any) -> None:
    """pytest-benchmark entry: the script in a subprocess, figures in extra_info."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1"}

    def once() -> dict[str, Any]:
        job = subprocess.run([sys.executable, __file__, "--json"], capture_output=True,
                             text=True, timeout=1800, env=env, check=True)
        return json.loads(job.stdout)

    result = benchmark.pedantic(once, rounds=1, iterations=1)
    for runtime in ("mpi", "inproc"):
        benchmark.extra_info[f"{runtime}_mean_abs_error"] = result[runtime]["mean_abs_error"]
        benchmark.extra_info[f"{runtime}_rank_correlation"] = \
            result[runtime]["rank_correlation"]
    benchmark.extra_info["rows"] = {rt: result[rt]["rows"] for rt in ("mpi", "inproc")}


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = benchmark_prediction(progress=True)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
