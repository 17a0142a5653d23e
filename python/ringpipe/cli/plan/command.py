"""``ringpipe plan``: recommend TP × PP × DP, schedule and micro-batch size for a model
on a cluster, from ringpipe's cost model (:mod:`ringpipe.cost`).

    ringpipe plan --model gpt3-175b --cluster dgx-a100 --nodes 8 --global-batch 1536 \\
        [--top 10] [--json] [--plot FILE]

The model is a preset (``--model``) or explicit sizes (``--layers --hidden --heads
--seq --vocab`` [``--ffn --kv-heads --gated-mlp``]); explicit sizes given with a preset
override its fields. ``--split even|balanced`` pins how the layers are split over the
stages (default: search both) and ``--layout`` gives the stages explicitly
(:mod:`ringpipe.cli.args.layout`). The cluster is a preset (``--cluster``) or a TOML/JSON file
(``--cluster-file``), with ``--nodes`` nodes. ``--tp --pp --dp --schedule --chunks
--microbatch-size --recompute`` pin dimensions; with tp/pp/dp pinned the output also
compares the pinned choice with the best unpinned one (predicted slowdown, main reason).
The recipe defaults to today's Megatron-LM (:mod:`ringpipe.cost.training.recipe`); ``--no-sp
--no-flash-attention --no-distributed-optimizer --no-overlap-grad-reduce`` switch parts
off. ``--headroom GIB`` (default 4): a configuration fits when it leaves that much free.
These, ``--seq`` and the other training flags are refused with ``--inference``
(:mod:`ringpipe.cli.plan.inference`); model sizes must be >= 1 (leave ``--ffn`` and
``--kv-heads`` out for their defaults) and ``--plot`` needs a non-empty file name.
The table shows model TFLOP/s (no recomputation; MFU) and hardware TFLOP/s
(recomputation included) per GPU side by side.

Exit status: 0 when a configuration fits; 1 when none fits (the message gives the
smallest memory per GPU any configuration needs; ``--json`` still prints the first
``--top`` candidates, closest to fitting first); 2 on bad arguments (unknown preset,
inconsistent cluster numbers, a GPU count no factorisation fits), with a one-line error
on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ringpipe.cli.args.layout import add_layout_arguments, parse_layout
from ringpipe.cli.args.model import SIZE_FLAGS, build_model, build_training
from ringpipe.cli.args.parallel import (
    add_parallelism_arguments,
    planner_pins,
    refuse_for_serving,
)
from ringpipe.cli.cluster import build_cluster
from ringpipe.cli.emit import EMIT_TOOLS, check_emit, comment, emit_training
from ringpipe.cli.names.aliases import PLAN_ALIASES, add_aliases, schedule_name
from ringpipe.cli.plan import inference as plan_inference
from ringpipe.cli.plan.plot import check_plot_path, write_plot
from ringpipe.cli.plan.verdict import bubble_note, verdict
from ringpipe.cost.hardware.cluster import CLUSTER_PRESETS, GIB
from ringpipe.cost.hardware.wording import GPU_WORDS, Wording, wording
from ringpipe.cost.training.memory import DEFAULT_HEADROOM_GIB
from ringpipe.cost.training.prediction import StepPrediction
from ringpipe.cost.training.search import (
    DEFAULT_SCHEDULES,
    FitsNowhere,
    SearchReport,
    SearchSpace,
    search,
)
from ringpipe.cost.training.spec import DTYPES, RECOMPUTE
from ringpipe.model.presets import MODEL_PRESETS
from ringpipe.schedules import SCHEDULES
from ringpipe.schedules.registry import SYNTH, SYNTH_ALIAS

_SIZE_HELP = {"layers": "transformer layers", "hidden": "model width h",
              "heads": "attention heads", "seq": "sequence length", "vocab": "vocabulary size",
              "ffn": "MLP width (default 4h)", "kv_heads": "key/value heads (GQA; default heads)"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``plan`` subcommand."""
    p = subparsers.add_parser("plan", help="rank TP×PP×DP configurations of a model on a "
                                           "cluster by predicted step time")
    model = p.add_argument_group("model (a preset, or explicit sizes)")
    model.add_argument("--model", choices=list(MODEL_PRESETS), default=None,
                       help="a preset model; explicit sizes below override its fields")
    for flag in SIZE_FLAGS:
        model.add_argument("--" + flag.replace("_", "-"), type=int, default=None,
                           help=_SIZE_HELP[flag])
    model.add_argument("--gated-mlp", action="store_true", default=None,
                       help="SwiGLU MLP (3 matrices); default for Llama presets")
    cluster = p.add_argument_group("cluster (a preset or a file)")
    cluster.add_argument("--cluster", choices=list(CLUSTER_PRESETS), default=None,
                         help="a preset cluster (per-GPU numbers: ringpipe.cost.hardware.cluster)")
    cluster.add_argument("--cluster-file", default=None, help="TOML or JSON cluster file")
    cluster.add_argument("--nodes", type=int, default=None,
                         help="node count (default: the file's, or 1)")
    cluster.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         dest="overrides", help="change one key of the preset or file, as "
                         "a cluster file spells it, e.g. inter_node.bandwidth_gbs=50 "
                         "(repeatable; checked like the file)")
    train = p.add_argument_group("training")
    train.add_argument("--global-batch", type=int, default=None,
                       help="sequences per step (required without --inference)")
    train.add_argument("--microbatch-size", type=int, default=None,
                       help="sequences per micro-batch (default: search 1, 2, 4, 8, 16)")
    train.add_argument("--recompute", choices=RECOMPUTE, default=None,
                       help="activation recomputation (default: for each configuration "
                            "try none, then selective, then full, keeping the first that "
                            "fits)")
    train.add_argument("--dtype", choices=list(DTYPES), default="bf16",
                       help="training dtype (default bf16; fp8: Transformer Engine's FP8 "
                            "recipe, on GPUs with FP8 tensor cores)")
    recipe = p.add_argument_group("recipe (default: today's Megatron-LM)")
    recipe.add_argument("--shard-optimizer", action="store_true",
                        help="distributed optimizer (ZeRO-1); on by default, kept as an alias")
    recipe.add_argument("--no-distributed-optimizer", action="store_true",
                        help="replicate fp32 master weights and Adam state on every DP rank")
    recipe.add_argument("--no-sp", action="store_true", help="no sequence parallelism")
    recipe.add_argument("--no-flash-attention", action="store_true",
                        help="materialise the attention scores")
    recipe.add_argument("--no-overlap-grad-reduce", action="store_true",
                        help="reduce gradients after the pipeline drains")
    # default None, not DEFAULT_HEADROOM_GIB, so that --inference can tell it was given
    recipe.add_argument("--headroom", type=float, default=None,
                        metavar="GIB", help="free memory a configuration must leave "
                        f"(default {DEFAULT_HEADROOM_GIB:g} GiB; training only)")
    pins = p.add_argument_group("pins")
    for axis in ("tp", "pp", "dp"):
        pins.add_argument(f"--{axis}", type=int, default=None,
                          help=f"pin the {axis.upper()} degree (default: search)")
    pins.add_argument("--schedule", choices=[*SCHEDULES, SYNTH_ALIAS, SYNTH], default=None,
                      type=schedule_name,
                      help=f"default: search {', '.join(DEFAULT_SCHEDULES)}; auto: the "
                           "schedule synthesised for each configuration's stage costs "
                           "(PyTorch's class names such as ScheduleZBVZeroBubble are accepted)")
    pins.add_argument("--stages-per-rank", "--chunks", dest="chunks", type=int, default=None,
                      help="v, stages per pipeline rank (interleaved-1f1b; --chunks is the "
                           "older name)")
    pins.add_argument("--allow-uneven", action="store_true",
                      help="allow pp (· chunks) that does not divide the layers")
    add_layout_arguments(pins, None)
    out = p.add_argument_group("output")
    out.add_argument("--top", type=int, default=10, help="rows of the table (default 10)")
    out.add_argument("--json", action="store_true", help="machine-readable output")
    out.add_argument("--plot", default=None, metavar="FILE",
                     help="draw where the step time goes (stacked bars: the winner, the best "
                          "TP-heavy and PP-heavy plans) as .png, .svg or .pdf (needs "
                          "matplotlib)")
    out.add_argument("--emit", choices=EMIT_TOOLS, default=None, metavar="TOOL",
                     help="print the winner as TOOL's flags or config: "
                          f"{', '.join(EMIT_TOOLS)} (ringpipe.cli.emit)")
    add_parallelism_arguments(p, planner=True)
    plan_inference.add_arguments(p)
    add_aliases(p, PLAN_ALIASES)  # Megatron-LM's names (ringpipe.cli.names.aliases)
    p.set_defaults(handler=run)


#: The model's fields in ``plan --json``.
MODEL_JSON_FIELDS = ("name", "layers", "hidden", "heads", "seq", "vocab", "ffn", "kv_heads",
                     "gated_mlp", "tied_embeddings", "learned_positions", "dropout", "norm",
                     "biases", "head_dim", "experts", "top_k", "moe_ffn", "shared_experts",
                     "dense_layers")


def _row(rank: int | str, p: StepPrediction, words: Wording = GPU_WORDS) -> str:
    c = p.config
    fits = "" if p.fits else "  (does not fit)"
    ep = f"{c.ep}" + ("" if c.etp == c.tp else f"/{c.etp}")
    return (f"{rank:>4} {c.tp:>3} {c.pp:>3} {c.dp:>4} {c.cp:>3} {ep:>6}  "
            f"{c.schedule:<17}{c.chunks:>2} "
            f"{c.split_name:<9}{c.microbatch_size:>3}  {c.recompute:<9} {p.step_time:>9.3f} "
            f"{words.flops(p.model_tflops_per_gpu):>7.1f} {p.mfu:>6.1%} "
            f"{words.flops(p.hardware_tflops_per_gpu):>7.1f} "
            f"{p.memory.total / GIB:>8.1f} {p.bubble_fraction:>7.1%} "
            f"{p.comm_fraction:>6.1%}{fits}")


def format_table(report: SearchReport, rows: list[StepPrediction], title: str) -> str:
    """The ranked table, with a header naming which FLOPs each column counts."""
    words = wording(report.cluster)
    unit = words.flops_unit
    lines = [title, " " * 77 + "model FLOPs  hardware",
             "rank  tp  pp   dp  cp ep/etp  schedule          v split     mb  "
             f"recompute  step (s) {unit}    MFU {unit}  mem GiB  bubble   comm"]
    lines += [_row(i + 1, p, words) for i, p in enumerate(rows)]
    return "\n".join(lines)


def as_json(report: SearchReport, top: int | None = None) -> dict[str, Any]:
    """``{"cluster", "model", "training", "explanation", "candidates", "pinned"}``:
    the first ``top`` candidates, best first (non-fitting last), each with its memory
    breakdown; ``pinned`` compares a pinned choice with the best unpinned one."""
    m, t = report.model, report.training
    model = {**{f: getattr(m, f) for f in MODEL_JSON_FIELDS}, "params": m.total_params}
    training = {"global_batch": t.global_batch, "microbatch_size": t.microbatch_size,
                "dtype": t.dtype, "recompute": t.recompute, "recipe": t.recipe.to_dict(),
                "moe_imbalance": t.moe_imbalance, "headroom_gib": report.headroom / GIB}
    rows = report.candidates if top is None else report.candidates[:top]
    out: dict[str, Any] = {"cluster": report.cluster.to_dict(), "model": model,
                           "training": training, "verdict": verdict(report).to_dict(),
                           "explanation": report.explanation(),
                           "candidates": [p.to_dict() for p in rows]}
    best, free = report.best, report.unpinned_best
    if free is not None and best is not None:
        out["pinned"] = {"best_unpinned": free.to_dict(),
                         "predicted_slowdown": max(0.0, best.step_time / free.step_time - 1)}
    return out


def run(args: argparse.Namespace) -> int:
    """Handler of ``ringpipe plan``; returns the exit status."""
    if args.plot is not None:
        check_plot_path(args.plot)
    if args.top < 1:
        raise ValueError(f"--top must be >= 1, got {args.top}")
    if args.nodes is not None and args.nodes < 1:
        raise ValueError(f"--nodes must be >= 1, got {args.nodes}")
    plan_inference.check_plan_mode(args)  # the other mode's flags, before the model
    check_emit(args.emit, args.inference)
    if args.inference:
        refuse_for_serving(args)
        model = build_model(args)
        if model.is_moe:
            raise ValueError(f"--inference: {model.name} is a mixture-of-experts model; the "
                             "serving cost model prices dense models only")
        return plan_inference.run_inference_plan(args, model, build_cluster(args))
    if args.headroom is not None and not args.headroom >= 0:
        raise ValueError(f"--headroom must be >= 0 GiB, got {args.headroom}")
    model, cluster = build_model(args), build_cluster(args)
    headroom = DEFAULT_HEADROOM_GIB if args.headroom is None else args.headroom
    if args.global_batch is None:
        raise ValueError("--global-batch is required (or --inference)")
    training = build_training(args)
    space = SearchSpace(tp=args.tp, pp=args.pp, dp=args.dp, schedule=args.schedule,
                        chunks=args.chunks, allow_uneven=args.allow_uneven,
                        split=args.split, layout=parse_layout(args), **planner_pins(args))
    failure: FitsNowhere | None = None
    try:
        report = search(model, training, cluster, space, headroom, limits=args.env.limits)
    except FitsNowhere as exc:
        failure, report = exc, exc.report
    if args.plot is not None:
        write_plot(report, args.plot, args.top)
    title = (f"# {model.name} ({model.total_params / 1e9:.1f}B params) on {cluster.nodes} × "
             f"{cluster.name} ({wording(cluster).count(cluster.world)}), global batch "
             f"{training.global_batch}: "
             f"{len(report.candidates)} candidates, {len(report.fitting)} fit")
    emitted = emit_training(report, args.emit) if args.emit and failure is None else None
    if args.json:
        print(json.dumps({**as_json(report, args.top), "emit": emitted}, indent=2))
    elif emitted is not None:  # the winner as the tool's settings
        print(f"{comment(verdict(report).lines()[0])}\n{emitted}")
    elif failure is None:
        print(verdict(report).text() + "\n")
        print(format_table(report, list(report.fitting[:args.top]), title))
        print("\n".join(filter(None, ["", bubble_note(report.best, model.vocab)])))
        print(report.explanation())
    else:
        closest = sorted(report.candidates, key=lambda p: p.memory.total)[:args.top]
        print(format_table(report, closest, title + "; closest by memory:"))
    if failure is not None:
        print(f"error: ringpipe plan: {failure}", file=sys.stderr)
        return 1
    return 0
