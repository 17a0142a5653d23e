"""``ringpipe schedule synth``: a schedule synthesised for given per-stage costs.

    ringpipe schedule synth -p 4 -m 8 [-v 2] --forward 1,1,1,2 --backward-input 1,1,1,2 \\
        --backward-weight 1,1,1,2 [--memory-cap 4] [--budget 400]

The costs are the ``schedule`` command's (one per stage, p·v of them, or one for all);
``--memory-cap`` bounds the activations each rank holds, one unit per stage and
micro-batch from its forward to its input-gradient pass (default: no cap). The schedule
is :func:`ringpipe.schedules.synthesize`'s; the text and JSON outputs add how it
compares with the fixed schedules of the same p and v.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from fractions import Fraction

from ringpipe.schedules import CostModel, Schedule, synthesis_report
from ringpipe.validation import check_int

__all__ = ["SYNTH_NAMES", "add_synth_arguments", "costs_arg", "synth_build"]

#: The NAME that asks for a synthesised schedule.
SYNTH_NAMES = ("synth",)


def costs_arg(one: Callable[[str], Fraction]) -> Callable[[str], Fraction | list[Fraction]]:
    """An argparse type: one cost (parsed by ``one``) or a comma-separated list."""
    def parse(text: str) -> Fraction | list[Fraction]:
        parts = text.split(",")
        return one(parts[0]) if len(parts) == 1 else [one(x) for x in parts]
    return parse


def add_synth_arguments(parser: argparse.ArgumentParser,
                        one: Callable[[str], Fraction]) -> None:
    """``--memory-cap`` and ``--budget`` (for NAME ``synth``)."""
    parser.add_argument("--memory-cap", type=costs_arg(one), default=None, metavar="C",
                        help="synth: activations each rank may hold, in stage micro-batches "
                             "(one number, or one per rank; default: no cap)")
    parser.add_argument("--budget", type=int, default=None, metavar="N",
                        help="synth: list schedules to try (default 400)")


def synth_build(args: argparse.Namespace, p: int, m: int) -> Schedule:
    """The synthesised schedule the arguments describe; its report goes to
    ``args.synthesis`` for the output."""
    v = 1 if args.chunks is None else args.chunks
    costs = CostModel(args.forward, args.backward_input, args.backward_weight,
                      p2p_latency=args.p2p_latency)
    options = {} if args.budget is None else {"budget": check_int("--budget", args.budget)}
    report = synthesis_report(costs, args.memory_cap, p, m, v, **options)
    args.synthesis = report
    return report.schedule
