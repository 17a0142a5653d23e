"""The synthesised schedule against the fixed ones, on a grid of cost vectors.

    python -m ringpipe.schedules.synthesis.compare [LATENCY]   # Markdown table, summary

For p ranks, m micro-batches and v stages per rank, each stage's F, I and W costs are a
*shape* times a *ratio*:

* shapes: ``uniform``; ``last x2`` (the last stage twice as heavy: the loss and a large
  vocabulary); ``ends heavy`` (first 1.5×, last 2×: embedding and head); ``ramp``
  (stage s costs 1 + 0.1·s);
* ratios F : I : W of 1 : 1 : 1, and 1 : 1.2 : 0.6 (about the zero-bubble paper's
  profiled T_F : T_B : T_W, Qi et al., ICLR 2024, Table 6);
* the activation-memory cap: none, 2·(stages per rank)·p and (stages per rank)·p stage
  micro-batches per rank (ZB-2p's and ZB-1p's);
* messages free, or LATENCY (e.g. 0.1) of a forward.

Each row gives the synthesised makespan, the best fixed schedule that fits the cap (GPipe,
1F1B, ZB-H1 for v = 1; interleaved 1F1B, ZB-V, DualPipeV for v = 2), the gain, and a
lower bound no schedule can beat: for each rank, the forwards of the stages before its
first stage (it cannot start earlier) plus all its work, the largest over ranks (a rank
with two stages is bounded with the placement the synthesised schedule chose).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ringpipe.schedules.simulate import CostModel
from ringpipe.schedules.synthesis.search import synthesis_report

__all__ = ["SHAPES", "cost_vector", "main", "rows"]

SHAPES = ("uniform", "last x2", "ends heavy", "ramp")
RATIOS = ((1.0, 1.0, 1.0), (1.0, 1.2, 0.6))
SIZES = ((4, 8, 1), (8, 16, 1), (8, 32, 1), (4, 8, 2), (8, 16, 2), (8, 32, 2))


def cost_vector(p: int, v: int, shape: str, ratio: Sequence[float],
                latency: float = 0.0) -> CostModel:
    """The stage costs of one row (module docstring)."""
    stages = p * v
    weight = {"uniform": [1.0] * stages,
              "last x2": [1.0] * (stages - 1) + [2.0],
              "ends heavy": [1.5] + [1.0] * (stages - 2) + [2.0],
              "ramp": [1 + 0.1 * s for s in range(stages)]}[shape]
    f, i, w = ratio
    return CostModel(forward=[f * x for x in weight], backward_input=[i * x for x in weight],
                     backward_weight=[w * x for x in weight], p2p_latency=latency * f)


def lower_bound(costs: CostModel, placement: Sequence[int], m: int) -> float:
    """max over ranks of (forwards before its first stage) + m · (its stages' F + I + W)."""
    stages = len(placement)
    f, i, w = (costs.per_stage(n, stages) for n in ("forward", "backward_input",
                                                     "backward_weight"))
    bound = 0.0
    for rank in set(placement):
        own = [s for s in range(stages) if placement[s] == rank]
        head = sum(float(f[s]) for s in range(min(own)))
        bound = max(bound, head + m * sum(float(f[s] + i[s] + w[s]) for s in own))
    return bound


def rows(latency: float = 0.0) -> list[tuple]:
    """(p, m, v, shape, ratio, cap, synthesised, best fixed name, its makespan, bound)."""
    out = []
    for p, m, v in SIZES:
        for shape in SHAPES:
            for ratio in RATIOS:
                for cap in (None, 2 * p * v, p * v):
                    costs = cost_vector(p, v, shape, ratio, latency)
                    report = synthesis_report(costs, cap, p, m, v)
                    name, best = report.best_fixed or ("-", float("inf"))
                    bound = lower_bound(costs, report.schedule.placement, m)
                    out.append((p, m, v, shape, ratio, cap, float(report.makespan), name,
                                float(best), bound))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Print the table and the summary; ``argv``: [LATENCY], the message time as a
    fraction of a forward (default 0)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        latency = float(args[0]) if args else 0.0
    except ValueError:
        raise SystemExit(f"usage: python -m ringpipe.schedules.synthesis.compare [LATENCY]; "
                         f"LATENCY must be a number, got {args[0]!r}") from None
    table = rows(latency)
    print("| p | m | v | shape | F:I:W | cap | synth | best fixed | gain | bound |")
    print("|" + " --- |" * 10)
    for p, m, v, shape, ratio, cap, synth, name, best, bound in table:
        ratio_text = ":".join(f"{x:g}" for x in ratio)
        print(f"| {p} | {m} | {v} | {shape} | {ratio_text} | {cap or '-'} | {synth:.4g} | "
              f"{name} {best:.4g} | {1 - synth / best:+.2%} | {bound:.4g} |")
    worse = sum(r[6] > r[8] + 1e-9 for r in table)
    better = [r for r in table if r[6] < r[8] - 1e-9]
    uneven = [r for r in table if r[3] != "uniform"]
    tied = [r for r in uneven if r not in better]
    at_bound = sum(abs(r[8] - r[9]) <= 1e-9 * r[9] for r in tied)
    print(f"\n{len(table)} cost vectors: synthesised slower than the best fixed schedule in "
          f"{worse}, strictly faster in {len(better)}; of the {len(uneven)} uneven ones, "
          f"strictly faster in {len(uneven) - len(tied)}, and of the {len(tied)} ties "
          f"{at_bound} are fixed schedules already at the lower bound; largest gain "
          f"{max((1 - r[6] / r[8] for r in table), default=0):.1%}")


if __name__ == "__main__":
    main()
