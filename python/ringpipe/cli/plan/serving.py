"""``ringpipe plan --inference --rate R | --concurrency C | --trace FILE``: layouts by goodput.

    ringpipe plan --inference --model M --cluster C [--nodes N] --isl L --osl K \\
        (--rate R | --concurrency C | --trace FILE) [--requests 200] \\
        [--ttft-slo-ms X] [--itl-slo-ms Y] [--percentile 99] [--block-size 16] \\
        [--max-num-seqs 256] [--max-num-batched-tokens 8192] [--no-chunked-prefill] \\
        [--tp T --pp P --dp D] [--top 10] [--json] [--plot FILE]

Every tp × pp × dp layout serves the load with continuous batching in the simulator
(:mod:`ringpipe.cost.inference.serving`: the runtime's scheduler, priced per iteration):
``--rate`` Poisson arrivals per second, ``--concurrency`` C closed-loop clients (each
sends its next request when the last one ends, as AIPerf and genai-perf do; each client's
first request is a warm-up, left out of the statistics), or a trace
(``arrival_s,input_tokens,output_tokens``). Each layout gets p50/p90/p99 (and the chosen
percentile) of TTFT, ITL and end-to-end latency, requests/s and output tokens/s, and its
goodput: the largest Poisson rate at which the chosen percentile of TTFT and ITL meets
the SLOs (:mod:`ringpipe.cost.inference.goodput`; without SLOs, the requests/s served).
Layouts are ranked by goodput and the winner explained in one sentence against the best
layout of the other kind. ``--plot`` draws the chosen percentile's TTFT and ITL against
the request rate for the leading layouts, with the SLO lines (format from the suffix).

Exit 0 when a layout has a goodput above 0, 1 when none has, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys

from ringpipe.cli.plan.plot import save_figure
from ringpipe.cost.inference.goodput import ServingSearch, rank
from ringpipe.cost.inference.search import label
from ringpipe.cost.inference.serving import Knobs, Load, Slo, simulate
from ringpipe.cost.inference.traffic import read_trace

__all__ = ["KNOBS", "LOAD_FLAGS", "add_arguments", "refuse_knobs", "requested",
           "run_serving_plan"]


def add_arguments(g: argparse._ArgumentGroup) -> None:
    """The traffic and scheduler flags (the SLO flags are :mod:`.plan_inference`'s)."""
    g.add_argument("--rate", type=float, default=None,
                   help="serve Poisson arrivals of R requests/s with continuous batching and "
                        "rank layouts by goodput")
    g.add_argument("--concurrency", type=int, default=None,
                   help="serve C closed-loop clients (each sends its next request when the "
                        "last one ends) and rank layouts by goodput")
    g.add_argument("--trace", default=None, metavar="FILE",
                   help="serve the requests of a CSV trace (arrival_s,input_tokens,"
                        "output_tokens)")
    g.add_argument("--requests", type=int, default=None,
                   help="requests per simulation with --rate/--concurrency (200)")
    g.add_argument("--percentile", type=float, default=None,
                   help="the latency percentile the SLOs hold at (99)")
    # defaults None: given or not tells a static batch and training apart (KNOBS)
    g.add_argument("--block-size", type=int, default=None, help="KV block positions (16)")
    g.add_argument("--max-num-seqs", type=int, default=None,
                   help="most requests in one iteration (256)")
    g.add_argument("--max-num-batched-tokens", type=int, default=None,
                   help="most positions in one iteration (8192)")
    g.add_argument("--no-chunked-prefill", action="store_true",
                   help="prefill each prompt whole, never in chunks")


#: The flags that describe the load: (flag, dest); refused in a training plan.
LOAD_FLAGS = (("--rate", "rate"), ("--concurrency", "concurrency"), ("--trace", "trace"),
              ("--requests", "requests"), ("--percentile", "percentile"))
#: The scheduler's knobs: (flag, dest, default); refused without a load, and in training.
KNOBS = (("--block-size", "block_size", 16), ("--max-num-seqs", "max_num_seqs", 256),
         ("--max-num-batched-tokens", "max_num_batched_tokens", 8192),
         ("--no-chunked-prefill", "no_chunked_prefill", False))


def refuse_knobs(args: argparse.Namespace) -> None:
    """ValueError naming a scheduler knob given for a static batch (it would change
    nothing: only continuous batching has a scheduler)."""
    for flag, dest, _ in KNOBS:
        if getattr(args, dest, None) not in (None, False):
            raise ValueError(f"{flag} needs --rate, --concurrency or --trace (the knobs of "
                             "continuous batching; a static batch has no scheduler)")


def _knob(args: argparse.Namespace, dest: str) -> object:
    value = getattr(args, dest, None)
    return next(d for _, k, d in KNOBS if k == dest) if value is None else value


def requested(args: argparse.Namespace) -> bool:
    """Whether the flags ask for serving under traffic (a rate, a concurrency, a trace)."""
    return any(getattr(args, k) is not None for k in ("rate", "concurrency", "trace"))


def _load(args: argparse.Namespace) -> Load:
    given = [f"--{k}" for k in ("rate", "concurrency", "trace") if getattr(args, k) is not None]
    if len(given) > 1:
        raise ValueError(f"give one of --rate, --concurrency and --trace, not "
                         f"{' and '.join(given)}")
    for flag in ("batch", "objective"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag} does not apply with {given[0]}: continuous batching "
                             "forms its own batches and layouts are ranked by goodput")
    if args.trace is not None:
        if args.requests is not None:
            raise ValueError("--requests does not apply with --trace: the trace lists them")
        reqs = read_trace(args.trace)
        return Load(args.prompt_len, args.output_len, len(reqs), trace=tuple(reqs))
    n = 200 if args.requests is None else args.requests
    if args.rate is not None:
        if not args.rate > 0:
            raise ValueError(f"--rate must be > 0 requests/s, got {args.rate}")
        return Load(args.prompt_len, args.output_len, n, rate=args.rate)
    if args.concurrency < 1 or args.concurrency >= n:
        raise ValueError(f"--concurrency must be in 1 .. --requests - 1 ({n - 1}: each "
                         f"client's first request is a warm-up), got {args.concurrency}")
    return Load(args.prompt_len, args.output_len, n, concurrency=args.concurrency)


def _describe(report: ServingSearch) -> str:
    m, c, ld, slo, k = report.model, report.cluster, report.load, report.slo, report.knobs
    targets = ", ".join(f"{n} ≤ {v * 1e3:g} ms" for n, v in (("TTFT", slo.ttft_s),
                                                            ("ITL", slo.itl_s)) if v is not None)
    lengths = (f"isl {ld.isl}, osl {ld.osl}" if ld.trace is None
               else "lengths from the trace")
    return (f"# {m.name} ({m.total_params / 1e9:.1f}B) on {c.nodes} × {c.name} ({c.world} GPUs),"
            f" {lengths}, {report.dtype}, {report.operating_point()} ({ld.requests} requests);"
            f" SLO {f'p{slo.percentile:g} ' + targets if targets else 'none'}; continuous "
            f"batching: KV blocks of {k.block_size}, ≤{k.max_batch} requests and "
            f"≤{k.token_budget} positions per iteration, "
            f"{'chunked' if k.chunked_prefill else 'whole'} prefill")


def format_table(report: ServingSearch, top: int) -> str:
    """The ranked table: goodput, rates and latency percentiles at the operating point."""
    q = report.slo.percentile
    head = (f"rank  layout         goodput req/s  req/s   tok/s  ttft p50/p{q:g} ms  "
            f"itl p50/p{q:g} ms  e2e p{q:g} ms  batch  kv blocks")
    lines = [_describe(report), head]
    for i, c in enumerate(report.candidates[:top]):
        s = c.stats
        if s is None:
            lines.append(f"{i + 1:>4}  {label(c.layout):<14} (does not fit: the weights leave "
                         "no room for one request's KV cache)")
            continue
        note = "" if c.meets_slo or not report.slo.any else "  (misses SLO here)"
        lines.append(
            f"{i + 1:>4}  {label(c.layout):<14} {c.goodput_rps:>13.2f} {s.requests_per_s:>6.2f} "
            f"{s.throughput_tokens_per_s:>7.0f} {s.pct('ttft', 50) * 1e3:>7.0f}/"
            f"{s.pct('ttft', q) * 1e3:<9.0f} {s.pct('itl', 50) * 1e3:>6.1f}/"
            f"{s.pct('itl', q) * 1e3:<9.1f} {s.pct('e2e', q) * 1e3:>11.0f} "
            f"{s.mean_batch:>6.1f} {s.num_blocks:>10}{note}")
    return "\n".join(lines)


def write_plot(report: ServingSearch, path: str, layouts: int = 4, points: int = 7) -> None:
    """The chosen percentile's TTFT and ITL against the Poisson rate for the ``layouts``
    best layouts that fit, with the SLO lines; the format follows the file's suffix."""
    try:
        import matplotlib  # noqa: PLC0415 - optional extra, imported only when plotting
    except ImportError as exc:
        raise ImportError(f"--plot needs matplotlib: pip install 'ringpipe[plot]' ({exc})"
                          ) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from ringpipe.cost.inference.model import InferenceModel  # noqa: PLC0415

    q, slo = report.slo.percentile, report.slo
    shown = [c for c in report.candidates if c.stats is not None][:layouts]
    top = max([c.goodput_rps for c in shown] + [c.stats.requests_per_s for c in shown])
    rates = [top * 1.6 * (i + 1) / points for i in range(points)]
    im = InferenceModel(report.model, report.cluster)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for c in shown:
        sweep = [simulate(im, c.layout, report.load.at_rate(r), report.knobs, report.dtype)
                 for r in rates]
        for ax, metric in zip(axes, ("ttft", "itl"), strict=True):
            ax.plot(rates, [s.pct(metric, q) * 1e3 for s in sweep], marker="o", ms=3,
                    label=label(c.layout))
    for ax, metric, target in zip(axes, ("TTFT", "ITL"), (slo.ttft_s, slo.itl_s),
                                  strict=True):
        if target is not None:
            ax.axhline(target * 1e3, color="k", ls="--", lw=1, label=f"SLO {target * 1e3:g} ms")
        ax.set_yscale("log")
        ax.set_xlabel("request rate (requests/s, Poisson)")
        ax.set_ylabel(f"p{q:g} {metric} (ms)")
        ax.legend(fontsize=7)
    m = report.model
    fig.suptitle(f"{m.name} on {report.cluster.nodes} × {report.cluster.name}, isl "
                 f"{report.load.isl}, osl {report.load.osl}, {report.dtype}")
    fig.tight_layout()
    save_figure(fig, path)  # the format its suffix names (.png, .svg, .pdf)
    plt.close(fig)


def run_serving_plan(args: argparse.Namespace, model: object, cluster: object,
                     ttft_slo: float | None, itl_slo: float | None) -> int:
    """Handler of ``plan --inference`` with a rate, a concurrency or a trace."""
    load = _load(args)
    slo = Slo(ttft_slo, itl_slo, 99.0 if args.percentile is None else args.percentile)
    knobs = Knobs(_knob(args, "block_size"), _knob(args, "max_num_seqs"),
                  _knob(args, "max_num_batched_tokens"), not args.no_chunked_prefill)
    report = rank(model, cluster, load, slo, knobs, args.dtype,  # type: ignore[arg-type]
                  {"tp": args.tp, "pp": args.pp, "dp": args.dp})
    if args.plot is not None:
        write_plot(report, args.plot)
    if args.json:
        best = report.best
        print(json.dumps({
            "model": report.model.name, "cluster": report.cluster.to_dict(),
            "load": {"isl": load.isl, "osl": load.osl, "requests": load.requests,
                     "rate": load.rate, "concurrency": load.concurrency,
                     "trace": args.trace},
            "slo": {"ttft_s": slo.ttft_s, "itl_s": slo.itl_s, "percentile": slo.percentile},
            "scheduler": vars(knobs), "dtype": report.dtype,
            "best": None if best is None else best.to_dict(slo.percentile),
            "explanation": report.explanation(),
            "candidates": [c.to_dict(slo.percentile) for c in report.candidates[:args.top]]},
            indent=2))
    else:
        print(format_table(report, args.top))
        print()
        print(report.explanation())
    if report.best is None:
        print("error: ringpipe plan --inference: no layout fits and meets the SLOs at any rate",
              file=sys.stderr)
        return 1
    return 0
