"""``ringpipe schedule``: generate, check, simulate and draw a pipeline schedule.

    ringpipe schedule NAME --stages P --microbatches M [--chunks V]
                      [--format text|json|csv|svg|chrome] [--output FILE]
    ringpipe schedule synth -p P -m M [-v V] --forward 1,1,1,2 ... [--memory-cap C]
    ringpipe schedule --from-csv FILE [--format ...]

Costs (``--forward --backward-input --backward-weight``) are one number for every
stage or a comma-separated list with one per stage (p·v). ``synth`` synthesises a
schedule for those costs and ``--memory-cap`` (activations held per rank, one unit per
stage and micro-batch; :mod:`ringpipe.cli.schedule.synth`).

Every schedule is validated (completeness, dependency order, deadlock-free dry run
with SEND/RECV added, sends blocking in batches unless ``--sends isend``) and
simulated (default costs F = I = W = 1, B = I + W, free communication). Exit 0
on success; 1 when a ``--from-csv`` schedule fails validation, including rows
that parse but do not form a schedule (a missing stage, a blank line between
rank rows): the rank x step grid with the failing steps goes to stderr; 2 on bad
arguments, an unreadable file or a cell that is not an action.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from fractions import Fraction

from ringpipe.cli.names.aliases import schedule_name
from ringpipe.cli.schedule.synth import SYNTH_NAMES, add_synth_arguments, costs_arg, synth_build
from ringpipe.files import display, read_text
from ringpipe.limits import Limits
from ringpipe.schedules import (
    SCHEDULES,
    SEND_MODES,
    CostModel,
    Schedule,
    ScheduleError,
    add_communication,
    chrome_trace_json,
    format_time_grid,
    generate,
    render_svg,
    schedule_from_csv,
    schedule_to_csv,
    simulate,
    summary,
    validate,
)
from ringpipe.schedules.csv_io import CSV_BYTES_PER_CELL
from ringpipe.schedules.registry import INFERENCE_SCHEDULES  # forward-only: prefill, decode
from ringpipe.validation import check_int

FORMATS = ("text", "json", "csv", "svg", "chrome")


def _cost(text: str) -> Fraction:
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (e.g. 1, 0.5, 1/3)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


_costs = costs_arg(_cost)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``schedule`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "schedule",
        help="generate, validate, simulate and draw a pipeline schedule",
        description="Generate (or load from CSV), validate, simulate and draw a pipeline "
        "schedule. Schedules: "
        + ", ".join(f"{s.name} ({s.constraints})" for s in SCHEDULES.values()),
    )
    parser.add_argument(
        "name",
        nargs="?",
        choices=[*SCHEDULES, *INFERENCE_SCHEDULES, *SYNTH_NAMES],
        type=schedule_name,  # PyTorch's class names too (ringpipe.cli.names.aliases)
        metavar="NAME",
        help="schedule: " + ", ".join([*SCHEDULES, *INFERENCE_SCHEDULES, *SYNTH_NAMES]),
    )
    parser.add_argument("--pipeline-ranks", "--stages", "-p", dest="stages", type=int,
                        metavar="P", help="pipeline ranks p (--stages is the older name; a "
                        "schedule has p·v stages)")
    parser.add_argument("--microbatches", "-m", type=int, metavar="M", help="micro-batches m")
    parser.add_argument(
        "--stages-per-rank",
        "--chunks",
        "-v",
        dest="chunks",
        type=int,
        metavar="V",
        help="stages per pipeline rank v (interleaved-1f1b only, default 2; zb-v is fixed "
        "at 2); --chunks is the older name",
    )
    parser.add_argument(
        "--from-csv",
        metavar="FILE",
        help="validate and simulate a schedule in PyTorch's CSV layout",
    )
    parser.add_argument("--format", choices=FORMATS, default="text", help="output (text)")
    parser.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="write here, not to stdout")
    parser.add_argument(
        "--comms", action="store_true", help="include SEND/RECV actions in --format csv"
    )
    parser.add_argument(
        "--sends",
        choices=SEND_MODES[::-1],
        default="batched",
        help="deadlock check: batched blocking sends, as Megatron/PyTorch run them "
        "(default), or non-blocking isend",
    )
    parser.add_argument(
        "--forward", type=_costs, default=Fraction(1), metavar="T",
        help="forward time per stage: one, or a comma-separated list per stage (1)"
    )
    parser.add_argument(
        "--backward-input",
        type=_costs,
        default=Fraction(1),
        metavar="T",
        help="input-gradient time per stage, I (1); B = I + W",
    )
    parser.add_argument(
        "--backward-weight",
        type=_costs,
        default=Fraction(1),
        metavar="T",
        help="weight-gradient time per stage, W (1)",
    )
    parser.add_argument(
        "--p2p-latency",
        type=_cost,
        default=Fraction(0),
        metavar="T",
        help="time per point-to-point message (0)",
    )
    add_synth_arguments(parser, _cost)
    parser.set_defaults(handler=run)


def _positive(flag: str, value: int | None) -> int:
    if value is None:
        raise ValueError(f"{flag}: required with a schedule NAME")
    return check_int(f"{flag}:", value, 1)


def _load_csv(path: str, limits: Limits) -> Schedule:
    """The ``--from-csv`` schedule, read through the one safe reader (a FIFO, a device or
    a directory refused without blocking) and bounded before parsing: no larger than a
    schedule within ``max_schedule_cells`` can be (``CSV_BYTES_PER_CELL`` bytes a cell),
    with no more actions than it can have (at most 8 per (stage, micro-batch) cell: F, B
    or I and W, and their sends and receives), so parsing stays bounded (600 000 cells
    took 13 s and 1 GB); the exact size is checked after parsing."""
    text = read_text(path, "CSV schedule", CSV_BYTES_PER_CELL * limits.max_schedule_cells,
                     "one row of actions per rank", f"--from-csv {display(path)}")
    fields = text.count(",") + text.count("\n") + 1
    limits.require("max_schedule_cells", "--from-csv actions / 8 (at most 8 per cell)",
                   fields // 8)
    try:
        return schedule_from_csv(text, name=os.path.splitext(os.path.basename(path))[0])
    except ScheduleError:
        raise
    except ValueError as exc:
        raise ValueError(f"{display(path)}: {exc}") from None


def _build(args: argparse.Namespace) -> Schedule:
    if args.from_csv is not None:
        if args.name is not None:
            raise ValueError("give either NAME or --from-csv, not both")
        given = [
            f
            for f, v in (
                ("--stages", args.stages),
                ("--microbatches", args.microbatches),
                ("--chunks", args.chunks),
            )
            if v is not None
        ]
        if given:
            raise ValueError(
                f"{', '.join(given)}: not allowed with --from-csv (read from the file)"
            )
        limits = args.env.limits
        schedule = _load_csv(args.from_csv, limits)
        # the same limits as a generated schedule's (ringpipe.limits)
        limits.require("max_stages", "--from-csv stages", schedule.num_stages)
        limits.require("max_microbatches", "--from-csv micro-batches",
                       schedule.num_microbatches)
        limits.require("max_schedule_cells", "--from-csv schedule size stages·micro-batches",
                       schedule.num_stages * schedule.num_microbatches)
        return schedule
    if args.name is None:
        raise ValueError("NAME or --from-csv is required")
    p = _positive("--stages", args.stages)
    m = _positive("--microbatches", args.microbatches)
    if args.chunks is not None:
        check_int("--chunks:", args.chunks, 1)
    if args.name in SYNTH_NAMES:
        return synth_build(args, p, m)
    if args.memory_cap is not None:
        raise ValueError("--memory-cap: only synth takes a memory cap")
    return generate(args.name, p, m, args.chunks)


def run(args: argparse.Namespace) -> int:
    """Handler of ``ringpipe schedule``; returns the exit status."""
    costs = CostModel(
        args.forward, args.backward_input, args.backward_weight, p2p_latency=args.p2p_latency
    )
    try:
        schedule = _build(args)  # a CSV whose rows form no schedule fails here
        validate(schedule, args.sends)  # as given: the clearest errors for a hand-written CSV
        lowered = schedule if schedule.has_comms else add_communication(schedule)
        result = simulate(lowered, costs, execution_order=validate(lowered, args.sends))
    except ScheduleError as exc:
        print(f"error: ringpipe schedule: {exc.reason}\n{exc.grid}", file=sys.stderr)
        return 1
    if args.format == "json":
        doc = summary(result)
        if getattr(args, "synthesis", None) is not None:
            doc["synthesis"] = args.synthesis.as_dict()
        text = json.dumps(doc, indent=2) + "\n"
    elif args.format == "csv":
        text = schedule_to_csv(lowered if args.comms else schedule)
    elif args.format == "svg":
        text = render_svg(result)
    elif args.format == "chrome":
        text = chrome_trace_json(result) + "\n"
    else:
        peaks = ", ".join(map(str, result.peak_activations))
        text = (
            f"{schedule.name}: p={schedule.num_ranks} m={schedule.num_microbatches} "
            f"v={schedule.chunks_per_rank}  makespan {result.makespan}  bubble "
            f"{result.bubble_fraction} = {float(result.bubble_fraction):.2%}  "
            f"peak activations per rank [{peaks}]\n" + format_time_grid(result) + "\n"
        )
        if getattr(args, "synthesis", None) is not None:
            text += args.synthesis.describe() + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise ValueError(f"--output: cannot write {args.output}: {exc.strerror}") from None
    return 0
