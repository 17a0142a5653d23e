"""``ringpipe plan --inference``: rank TP × PP (× DP) layouts for serving a model.

    ringpipe plan --inference --model M --cluster C [--nodes N] --isl L --osl K \\
        --batch B [--dtype bf16|fp8] [--objective latency|throughput] \\
        [--ttft-slo-ms X] [--itl-slo-ms Y] [--top 10] [--json] [--plot FILE]

``--isl``/``--osl`` are ``--prompt-len``/``--output-len``, ``--itl-slo-ms`` is
``--tpot-slo-ms``. With ``--rate R``, ``--concurrency C`` or ``--trace FILE`` the layouts
serve that traffic with continuous batching and are ranked by goodput instead
(:mod:`ringpipe.cli.plan.serving`).

``--top`` bounds the table, the ``--json`` candidates and the ``--plot`` curves alike.
Training-only flags (``--headroom``, ``--no-sp`` and the other recipe switches,
``--seq``, ``--allow-uneven``, ``--global-batch``, ...) are refused with exit 2 and the
reason, not ignored, and a training plan refuses the inference-only ones the same way
(:data:`PLAN_MODE_FLAGS`, :mod:`ringpipe.cli.modes`); with explicit model sizes ``--seq``
is not needed.

Each layout gets its time to first token, inter-token latency (ITL, the time per output
token), end-to-end latency, requests/s, tokens/s per user and per GPU, weights and KV-cache
memory per GPU, the largest batch that fits, and whether it fits
(:mod:`ringpipe.cost.inference.model`); the ranking and the one-sentence explanation come
from :mod:`ringpipe.cost.inference.search`. ``--plot`` draws each layout's
latency-throughput curve over batch sizes and the Pareto front over all of them.

Exit 0 when a layout fits (and meets the SLOs), 1 when none does, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys

from ringpipe.cli.emit import comment, emit_serving
from ringpipe.cli.modes import INFERENCE, TRAINING, ModeFlag, check_mode
from ringpipe.cli.plan import serving as plan_serving
from ringpipe.cli.plan.plot import save_figure
from ringpipe.cost.hardware.wording import wording
from ringpipe.cost.inference.model import MEMORY_UTILIZATION
from ringpipe.cost.inference.search import (
    OBJECTIVES,
    InferenceSearch,
    label,
    pareto_curves,
    search,
)
from ringpipe.cost.inference.workload import Workload
from ringpipe.schedules import SCHEDULES

__all__ = ["PLAN_MODE_FLAGS", "add_arguments", "check_plan_mode", "run_inference_plan"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``--inference`` flags of ``ringpipe plan`` (model, cluster, --dtype, --top,
    --json and --plot are the training plan's)."""
    g = p.add_argument_group("inference (with --inference)")
    g.add_argument("--inference", action="store_true",
                   help="rank layouts for serving (prefill + decode) instead of training")
    # defaults None: given or not tells the modes apart (ringpipe.cli.modes)
    g.add_argument("--prompt-len", "--isl", type=int, default=None, dest="prompt_len",
                   help="prompt (input sequence) tokens (2048)")
    g.add_argument("--output-len", "--osl", type=int, default=None, dest="output_len",
                   help="generated (output sequence) tokens (128)")
    g.add_argument("--batch", type=int, default=None,
                   help="concurrent sequences of one static batch (1)")
    g.add_argument("--objective", choices=OBJECTIVES, default=None,
                   help="static batch: latency (default): fastest time per output token at "
                        "--batch; throughput: most tokens/s per GPU at the best batch per "
                        "layout")
    g.add_argument("--ttft-slo-ms", type=float, default=None, help="time-to-first-token SLO")
    g.add_argument("--itl-slo-ms", "--tpot-slo-ms", type=float, default=None,
                   dest="tpot_slo_ms",
                   help="inter-token latency SLO (ITL = time per output token)")
    plan_serving.add_arguments(g)  # --rate/--concurrency/--trace: ringpipe.cli.plan.serving

def _slo(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if not value > 0:
        raise ValueError(f"--{name} must be > 0, got {value}")
    return value / 1e3


def format_table(report: InferenceSearch, top: int) -> str:
    """The ranked table; the header says which batch the rows use."""
    w, c, m = report.workload, report.cluster, report.model
    batch = (f"batch {w.batch}" if report.objective == "latency" else
             "batch chosen per layout (the batch column: most tok/s/GPU within the SLOs)")
    lines = [f"# {m.name} ({m.total_params / 1e9:.1f}B) on {c.nodes} × {c.name} "
             f"({wording(c).count(c.world)}), prompt {w.prompt_len}, output {w.output_len}, "
             f"{batch}, {w.dtype}, objective {report.objective}",
             "rank  layout           batch  ttft ms   itl ms   e2e ms   req/s  tok/s/user  "
             "tok/s/GPU  weights GiB  kv GiB  max batch"]
    for i, cand in enumerate(report.candidates[:top]):
        p = cand.prediction
        note = "" if p.fits else "  (does not fit)"
        note += "" if cand.meets_slo else "  (misses SLO)"
        lines.append(f"{i + 1:>4}  {label(p.layout):<15} {cand.batch:>6} {p.ttft_s * 1e3:>8.1f} "
                     f"{p.tpot_s * 1e3:>8.2f} {p.latency_s * 1e3:>8.0f} "
                     f"{cand.batch / p.latency_s:>7.2f} {p.tokens_per_s_per_user:>11.1f} "
                     f"{p.tokens_per_s_per_gpu:>10.1f} {p.weights_gib:>12.1f} "
                     f"{p.kv_cache_gib:>7.1f} {p.max_batch:>10}{note}")
    return "\n".join(lines)


def candidate_json(cand: object) -> dict[str, object]:
    """A candidate's JSON, with the serving names: ``itl_s`` (= ``tpot_s``), ``e2e_s`` and
    ``requests_per_s`` (the static batch's requests over its end-to-end latency)."""
    p = cand.prediction  # type: ignore[attr-defined]
    return {**cand.to_dict(), "itl_s": p.tpot_s, "e2e_s": p.latency_s,  # type: ignore[attr-defined]
            "requests_per_s": cand.batch / p.latency_s}  # type: ignore[attr-defined]

#: Curves drawn by --plot at most: the best-ranked layouts (all of a 64-node cluster's
#: layouts took minutes to price and made an unreadable legend).
PLOT_LAYOUTS = 12


def write_plot(report: InferenceSearch, path: str, top: int = PLOT_LAYOUTS,
               itl_slo_s: float | None = None) -> None:
    """Per layout (the ``min(top, PLOT_LAYOUTS)`` best ranked), tokens/s per GPU against
    time per output token over batch sizes; their Pareto front in black; the ITL SLO as
    a vertical line (what lies right of it misses it)."""
    try:
        import matplotlib  # noqa: PLC0415 - optional extra, imported only when plotting
    except ImportError as exc:
        raise ImportError(f"--plot needs matplotlib: pip install 'ringpipe[plot]' ({exc})"
                          ) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    shown = [c.prediction.layout for c in report.candidates[:min(top, PLOT_LAYOUTS)]]
    curves = pareto_curves(report.model, report.cluster, report.workload, shown)
    fig, ax = plt.subplots(figsize=(8, 5))
    points = []
    for name, pts in curves.items():
        ax.plot([t * 1e3 for t, _ in pts], [r for _, r in pts], marker="o", ms=3, label=name)
        points += pts
    front, best = [], -1.0
    for t, r in sorted(points):
        if r > best:
            front.append((t, r))
            best = r
    ax.plot([t * 1e3 for t, _ in front], [r for _, r in front], "k--", lw=1.5,
            label="Pareto front")
    if itl_slo_s is not None:
        ax.axvline(itl_slo_s * 1e3, color="r", ls=":", lw=1.5,
                   label=f"ITL SLO {itl_slo_s * 1e3:g} ms")
    ax.set_xscale("log")
    ax.set_xlabel("time per output token (ms)")
    ax.set_ylabel("output tokens/s per GPU")
    w = report.workload
    ax.set_title(f"{report.model.name} on {report.cluster.name}, prompt {w.prompt_len}, "
                 f"output {w.output_len}, {w.dtype}")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, path)  # the format its suffix names (.png, .svg, .pdf)
    plt.close(fig)


def _training(flag: str, dest: str, why: str) -> ModeFlag:
    return ModeFlag(flag, dest, TRAINING, why)


def _inference(flag: str, dest: str, default: object = None) -> ModeFlag:
    return ModeFlag(flag, dest, INFERENCE, "training plans are sized by --global-batch and "
                    "--seq, and ranked by step time", default)


#: ``ringpipe plan``'s flags of one mode (:mod:`ringpipe.cli.modes`): each refused in the
#: other, with why.
PLAN_MODE_FLAGS = (
    _training("--global-batch", "global_batch", "a serving workload is --batch sequences of "
              "--prompt-len + --output-len tokens"),
    _training("--microbatch-size", "microbatch_size", "serving splits the batch into groups "
              "in flight itself"),
    _training("--recompute", "recompute", "serving keeps no activations for a backward"),
    _training("--schedule", "schedule", "serving runs the prefill and decode schedules"),
    _training("--stages-per-rank", "chunks", "serving runs one stage per pipeline rank"),
    _training("--headroom", "headroom", f"a serving layout fits within "
              f"{MEMORY_UTILIZATION:.0%} of GPU memory (vLLM's gpu_memory_utilization), the "
              "KV cache filling the rest"),
    _training("--no-sp", "no_sp", "sequence parallelism splits training activations; the "
              "serving cost model has no such choice"),
    _training("--no-flash-attention", "no_flash_attention", "the serving cost model prices "
              "attention over the KV cache"),
    _training("--no-distributed-optimizer", "no_distributed_optimizer",
              "serving holds no optimizer state"),
    _training("--shard-optimizer", "shard_optimizer", "serving holds no optimizer state"),
    _training("--no-overlap-grad-reduce", "no_overlap_grad_reduce",
              "serving reduces no gradients"),
    _training("--allow-uneven", "allow_uneven", "serving layouts always split the layers as "
              "evenly as pp allows"),
    _training("--seq", "seq", "a served sequence is --prompt-len prompt tokens plus "
              "--output-len generated ones"),
    _training("--split", "split", "serving layouts always split the layers as evenly as "
              "pp allows"),
    _training("--layout", "layout", "serving layouts always split the layers as evenly as "
              "pp allows"),
    _inference("--prompt-len", "prompt_len", 2048),
    _inference("--output-len", "output_len", 128),
    _inference("--batch", "batch"),  # None: 1, or refused with a load (plan_serving)
    _inference("--objective", "objective"),  # None: latency, or refused with a load
    _inference("--ttft-slo-ms", "ttft_slo_ms"),
    _inference("--itl-slo-ms", "tpot_slo_ms"),
    *(_inference(flag, dest) for flag, dest in plan_serving.LOAD_FLAGS),
    *(_inference(flag, dest) for flag, dest, _ in plan_serving.KNOBS),
)


def check_plan_mode(args: argparse.Namespace) -> None:
    """Refuse the flags of the other mode (training or ``--inference``), naming the
    first and why, and fill in the defaults of this mode's (:mod:`ringpipe.cli.modes`);
    a training ``--stages-per-rank`` needs a ``--schedule`` that takes it."""
    check_mode(args, PLAN_MODE_FLAGS, INFERENCE if args.inference else TRAINING)
    if not args.inference and args.chunks is not None and args.schedule is None:
        takes = ", ".join(s.name for s in SCHEDULES.values() if s.takes_chunks)
        raise ValueError(f"--stages-per-rank {args.chunks} needs --schedule: it sets v of "
                         f"the schedules that take one ({takes}); the others fix it")


def run_inference_plan(args: argparse.Namespace, model: object, cluster: object) -> int:
    """Handler of ``ringpipe plan --inference`` for the model and cluster the shared
    flags describe (``run`` has refused the training-only flags); returns the exit
    status."""
    dtype = args.dtype
    if dtype not in ("bf16", "fp8"):
        raise ValueError(f"--dtype {dtype}: --inference supports bf16 and fp8")
    ttft, itl = _slo("ttft-slo-ms", args.ttft_slo_ms), _slo("itl-slo-ms", args.tpot_slo_ms)
    if plan_serving.requested(args):  # serving under traffic: ringpipe.cli.plan.serving
        if args.emit is not None:
            raise ValueError(f"--emit {args.emit} prints the static-batch layout: leave out "
                             "--rate, --concurrency and --trace to emit it")
        return plan_serving.run_serving_plan(args, model, cluster, ttft, itl)
    for flag in ("percentile", "requests"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag} needs --rate, --concurrency or --trace (a static "
                             "batch has one latency, not a distribution)")
    plan_serving.refuse_knobs(args)  # --block-size and the rest: continuous batching only
    objective = "latency" if args.objective is None else args.objective
    work = Workload(args.prompt_len, args.output_len, 1 if args.batch is None else args.batch,
                    dtype)
    report = search(model, cluster, work, objective,  # type: ignore[arg-type]
                    ttft, itl, {"tp": args.tp, "pp": args.pp, "dp": args.dp})
    if args.plot is not None:  # "" was refused up front (plan.check_plot_path)
        write_plot(report, args.plot, args.top, itl)
    emitted = None if args.emit is None or report.best is None else \
        emit_serving(report, args.emit)
    if args.json:
        best = report.best
        print(json.dumps({"model": report.model.name, "cluster": report.cluster.to_dict(),
                          "emit": emitted,
                          "workload": vars(work), "objective": report.objective,
                          "best": None if best is None else candidate_json(best),
                          "explanation": report.explanation(),
                          "candidates": [candidate_json(c)
                                         for c in report.candidates[:args.top]]}, indent=2))
    elif emitted is not None:  # the best layout as the server's flags
        print(f"{comment(report.explanation())}\n{emitted}")
    else:
        print(format_table(report, args.top))
        print()
        print(report.explanation())
    if report.best is None:
        print("error: ringpipe plan --inference: no layout fits and meets the SLOs",
              file=sys.stderr)
        return 1
    return 0
