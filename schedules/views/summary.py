"""The machine-readable summary of a simulated schedule (``ringpipe schedule --format json``).

Layout: ``{"schedule", "stages", "microbatches", "chunks", "bubble_fraction",
"makespan", "peak_activations": [one per rank], "actions": {"0": ["0F0", ...], ...}}``
where ``stages`` is p (pipeline ranks), ``chunks`` is v, and ``actions`` lists each
rank's compute actions in execution order. Exact Fractions become floats; integral
values stay ints.
"""

from __future__ import annotations

from fractions import Fraction
from numbers import Real

from ringpipe.schedules.simulate import SimulationResult


def _number(value: Real) -> int | float:
    if isinstance(value, int):
        return value
    if isinstance(value, Fraction) and value.denominator == 1:
        return value.numerator
    return float(value)


def summary(result: SimulationResult) -> dict:
    """The JSON-ready summary dict of ``result`` (layout in the module docstring)."""
    schedule = result.schedule
    return {
        "schedule": schedule.name,
        "stages": schedule.num_ranks,
        "microbatches": schedule.num_microbatches,
        "chunks": schedule.chunks_per_rank,
        "bubble_fraction": float(result.bubble_fraction),
        "makespan": _number(result.makespan),
        "peak_activations": list(result.peak_activations),
        "actions": {
            str(rank): [str(a) for a in row] for rank, row in enumerate(schedule.compute_actions())
        },
    }
