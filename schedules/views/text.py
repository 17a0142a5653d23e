"""Terminal view: the rank x time-slot grid of a simulated schedule.

It is the picture of the Megatron paper's figures: one row per
rank, one column per slot of equal duration, each action drawn as its text in its
first slot and ``-`` over the rest of its duration; idle slots are ``.``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction
from numbers import Rational

from ringpipe.schedules.simulate import SimulationResult
from ringpipe.schedules.views.step_grid import IDLE

#: Largest text grid drawn, in columns and in cells (ranks × columns): a tiny slot or a
#: very deep pipeline would otherwise allocate without bound.
MAX_SLOTS = 100_000
MAX_CELLS = 4_000_000

def _gcd(values: Iterable[object]) -> Fraction:
    result = Fraction(0)
    for value in values:
        if not isinstance(value, Rational):
            raise ValueError("slot: durations are not exact (float costs); pass slot= explicitly")
        v = Fraction(value)
        result = Fraction(
            math.gcd(result.numerator * v.denominator, v.numerator * result.denominator),
            result.denominator * v.denominator,
        )
    return result


def format_time_grid(result: SimulationResult, slot: object = None,
                     row_label: str = "rank") -> str:
    """Rank x time-slot grid of a simulated schedule (compute actions only); each row is
    labelled ``f"{row_label} {r}"`` (``"pipeline rank"`` where mesh ranks share the screen).

    ``slot`` is the duration of one column; by default the greatest common divisor
    of all compute durations, so every action spans a whole number of columns.
    """
    compute = [
        [t for t in line if t.action.kind.is_compute and t.end > t.start]
        for line in result.timelines
    ]
    if slot is None:
        slot = _gcd(t.end - t.start for line in compute for t in line) or Fraction(1)
    if not slot > 0:
        raise ValueError(f"slot: must be > 0, got {slot!r}")
    num_slots = math.ceil(result.makespan / slot) if result.makespan else 0
    if num_slots > MAX_SLOTS or num_slots * len(compute) > MAX_CELLS:
        raise ValueError(f"the text grid would need {num_slots} columns × {len(compute)} "
                         f"ranks (makespan {float(result.makespan):.6g} in slots of "
                         f"{float(slot):.6g}); at most {MAX_SLOTS} columns and {MAX_CELLS} "
                         "cells are drawn: use --format json, svg or chrome (from Python, "
                         "pass a larger slot=)")
    labels = [[IDLE] * num_slots for _ in compute]
    for r, line in enumerate(compute):
        for t in line:
            first = int(t.start / slot)
            last = max(first + 1, math.ceil(t.end / slot))
            labels[r][first] = str(t.action)
            for c in range(first + 1, min(last, num_slots)):
                labels[r][c] = "-"
    width = max([len(x) for row in labels for x in row] + [1])
    label = len(f"{row_label} {len(labels) - 1}")
    lines = []
    for r, row in enumerate(labels):
        cells = [x * width if x in ("-", IDLE) else x.ljust(width) for x in row]
        lines.append(f"{row_label} {r}".ljust(label) + " | " + " ".join(cells))
    return "\n".join(lines)
