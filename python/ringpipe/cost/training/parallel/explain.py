"""What context and expert parallelism buy: the chosen layout against the best without.

When the best configuration of a search uses CP (cp > 1) or EP (ep > 1), the
explanation names the best *fitting* configuration of the same search without it and
what separates them: the step-time gain and the part of the step that costs the other
layout the most (:func:`ringpipe.cost.training.explain.main_reason`), plus the memory
per GPU of both. When nothing without it fits, it says so with the smallest memory a
layout without it needs — the usual reason for CP at long sequences. When a MoE model's
best layout has no EP, it names the best layout with EP and why it loses.
"""

from __future__ import annotations

from collections.abc import Sequence

from ringpipe.cost.hardware.cluster import GIB, Cluster
from ringpipe.cost.training.explain import main_reason
from ringpipe.cost.training.prediction import StepPrediction

__all__ = ["parallelism_note"]

_NAMES = {"cp": ("CP", "context parallelism"), "ep": ("EP", "expert parallelism")}


def _against(best: StepPrediction, others: Sequence[StepPrediction], axis: str,
             cluster: Cluster) -> str:
    short, full = _NAMES[axis]
    degree = getattr(best.config, axis)
    without = [p for p in others if getattr(p.config, axis) == 1]
    fitting = [p for p in without if p.fits]
    if not fitting:
        if not without:
            return f"No layout without {short} was priced (the pins rule it out)."
        least = min(without, key=lambda p: p.memory.total)
        return (f"{full.capitalize()} ({short}={degree}) is what makes it fit: the smallest "
                f"layout without {short}, {least.config.label()}, needs "
                f"{least.memory.total / GIB:.1f} GiB per GPU of the "
                f"{best.memory_capacity / GIB:.0f} GiB.")
    other = min(fitting, key=lambda p: p.step_time)
    gain = 1 - best.step_time / other.step_time
    return (f"{full.capitalize()} ({short}={degree}) buys {gain:.1%} against the best layout "
            f"without it, {other.config.label()} ({other.step_time:.3g} s, "
            f"{other.memory.total / GIB:.1f} GiB per GPU against "
            f"{best.memory.total / GIB:.1f}), mainly through "
            f"{main_reason(other, best, cluster)}.")


def parallelism_note(best: StepPrediction, candidates: Sequence[StepPrediction],
                     cluster: Cluster, moe: bool) -> str:
    """The sentences of the module docstring for ``best`` among ``candidates`` ("" for
    a dense model's layout without CP)."""
    notes = [_against(best, candidates, axis, cluster) for axis in ("cp", "ep")
             if getattr(best.config, axis) > 1]
    if moe and best.config.ep == 1:
        with_ep = [p for p in candidates if p.fits and p.config.ep > 1]
        if with_ep:
            other = min(with_ep, key=lambda p: p.step_time)
            notes.append(f"Without expert parallelism: the best layout with EP, "
                         f"{other.config.label()}, is predicted "
                         f"{other.step_time / best.step_time - 1:.1%} slower, mainly through "
                         f"{main_reason(other, best, cluster)}.")
    return " ".join(notes)
