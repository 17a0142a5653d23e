"""Schedule synthesis: the best schedule the list scheduler finds for given stage costs
and an activation-memory cap, never worse than the fixed schedules.

:func:`synthesis_report` searches, for p ranks, m micro-batches and v stages per rank:

1. **placements**: one stage per rank (v = 1); for v = 2 the V (ZB-V, DualPipeV) and the
   interleaved one; for v > 2 the interleaved one;
2. **a grid** of the list scheduler's priority knobs (:mod:`.kernel`: backward first or
   not, deeper or shallower forwards first, the three W policies) and of per-rank limits
   on micro-batches in flight, ``ceil(α · (S - lowest stage of r) / v)`` for α = 1, 1.5,
   2 and unlimited (α = 1 is 1F1B's warm-up, α = 2 about ZB-H2's);
3. **local search** from the best: coordinate descent on the per-rank limits (each one
   ±1, kept when the makespan drops), until no move helps or the budget of list
   schedules is spent;
4. **the fixed schedules** with the same p and v that fit the cap (GPipe, 1F1B, ZB-H1 for
   v = 1; interleaved 1F1B, ZB-V, DualPipeV for v = 2), timed by the simulator: the
   answer is the fastest of everything, so it is never slower than the best of them.

Every candidate is timed exactly as :func:`ringpipe.schedules.simulate` times it (the
list scheduler starts each pass when its rank is free and its inputs are there, the
simulator's rule), and the answer is validated (completeness, dependency order,
deadlock freedom) before it is returned. Its name is ``synth``; the report says what
produced it.

**Limits.** A heuristic: list scheduling with a few knobs and a local search, not an
exact (ILP) optimum; the search space is the scheduler's policies, so a schedule no
policy produces (e.g. one that idles on purpose) can be missed. Forwards and backwards
of a stage run in micro-batch order. The cap bounds the held activations with certainty
(micro-batches enter only when every rank can hold them) and the pending weight-gradient
state as far as running W passes first can; with costs that vary per micro-batch or
communication that does not overlap compute, the simulator's model is the limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Real

import numpy as np

from ringpipe.schedules.actions import interleaved_placement, one_chunk_placement, v_shape_placement
from ringpipe.schedules.encoded import encode, encoded_arrays
from ringpipe.schedules.generators.dualpipev import dualpipev
from ringpipe.schedules.generators.gpipe import gpipe
from ringpipe.schedules.generators.interleaved import interleaved_one_f_one_b
from ringpipe.schedules.generators.one_f_one_b import one_f_one_b
from ringpipe.schedules.generators.zero_bubble import zb_h1
from ringpipe.schedules.generators.zero_bubble_v import zb_v
from ringpipe.schedules.memory import peak_memory
from ringpipe.schedules.schedule import Schedule
from ringpipe.schedules.simulate import CostModel, simulate
from ringpipe.schedules.validate import validate
from ringpipe.validation import check_int, check_real

__all__ = ["FIXED_BY_CHUNKS", "SynthesisReport", "synthesis_report", "synthesize"]

#: The fixed schedules a synthesised one is compared with, by stages per rank.
FIXED_BY_CHUNKS = {1: ("gpipe", "1f1b", "zb-h1"), 2: ("interleaved-1f1b", "zb-v", "dualpipev")}
_GENERATORS = {"gpipe": gpipe, "1f1b": one_f_one_b, "zb-h1": zb_h1, "zb-v": zb_v,
               "dualpipev": dualpipev,
               "interleaved-1f1b": lambda p, m: interleaved_one_f_one_b(p, m, 2)}
_ALPHAS = (math.inf, 2.0, 1.5, 1.0)
DEFAULT_BUDGET = 400


@dataclass(frozen=True)
class SynthesisReport:
    """The synthesised schedule, its simulated makespan, what produced it, and the
    makespan of every fixed schedule with the same p and v (None: not applicable, or over
    the memory cap)."""

    schedule: Schedule
    makespan: Real
    origin: str
    fixed: dict[str, Real | None] = field(default_factory=dict)
    evaluated: int = 0

    @property
    def best_fixed(self) -> tuple[str, Real] | None:
        """The fastest fixed schedule that fits, and its makespan."""
        fits = [(t, n) for n, t in self.fixed.items() if t is not None]
        return None if not fits else min(fits, key=lambda x: (x[0], x[1]))[::-1]

    def describe(self) -> str:
        """Two lines: what produced the schedule, and the fixed schedules' makespans."""
        fixed = ", ".join(f"{n} {'-' if t is None else t}" for n, t in self.fixed.items())
        best = self.best_fixed
        verdict = "" if best is None else (
            f"; {float(best[1] / self.makespan - 1):.1%} faster than the best, {best[0]}"
            if self.makespan < best[1] else f"; as fast as the best, {best[0]}")
        return (f"synthesised by {self.origin} ({self.evaluated} list schedules tried)\n"
                f"fixed schedules (makespan; - : not applicable or over the cap): "
                f"{fixed}{verdict}")

    def as_dict(self) -> dict[str, object]:
        """The JSON form: makespan, origin, list schedules tried, the fixed makespans."""
        def number(x: Real | None) -> float | None:
            return None if x is None else float(x)
        return {"makespan": number(self.makespan), "origin": self.origin,
                "evaluated": self.evaluated,
                "fixed": {n: number(t) for n, t in self.fixed.items()}}


def _per_rank(name: str, value: Real | Sequence[Real] | None, p: int) -> np.ndarray:
    if value is None:
        return np.full(p, np.inf)
    values = list(value) if isinstance(value, Sequence) else [value] * p
    if len(values) != p:
        raise ValueError(f"{name}: got {len(values)} per-rank values for {p} pipeline ranks")
    return np.array([float(check_real(f"{name}[{r}]", x, 0.0)) for r, x in enumerate(values)])


def _per_stage(name: str, value: Sequence[Real] | None, stages: int, default: float) -> tuple:
    if value is None:
        return (default,) * stages
    values = list(value)
    if len(values) != stages:
        raise ValueError(f"{name}: got {len(values)} per-stage values for {stages} stages")
    return tuple(float(check_real(f"{name}[{s}]", x, 0.0)) for s, x in enumerate(values))


def _placements(p: int, v: int) -> list[tuple[int, ...]]:
    if v == 1:
        return [one_chunk_placement(p)]
    if v == 2:
        return [v_shape_placement(p), interleaved_placement(p, 2)]
    return [interleaved_placement(p, v)]


@dataclass
class _Problem:
    p: int
    m: int
    v: int
    costs: CostModel
    held: tuple[float, ...]
    pending: tuple[float, ...]
    cap: np.ndarray
    best: tuple[float, Schedule | None, str] = (math.inf, None, "")
    runs: int = 0

    def arrays(self) -> tuple[np.ndarray, ...]:
        stages = self.p * self.v
        return tuple(np.array(self.costs.per_stage(n, stages), dtype=np.float64)
                     for n in ("forward", "backward_input", "backward_weight"))

    def run(self, placement: tuple[int, ...], limit: np.ndarray, knobs: tuple) -> float:
        """One list schedule; keeps it when it is the fastest so far."""
        # Numba loads here, when a schedule is synthesised, not when ringpipe starts
        from ringpipe.schedules.synthesis.kernel import OK, list_schedule  # noqa: PLC0415

        self.runs += 1
        fwd, bi, bw = self.arrays()
        status, rank, stage, kind, mb, _, end = list_schedule(
            np.array(placement, np.int64), fwd, bi, bw, float(self.costs.message_time),
            np.array(self.held), np.array(self.pending), self.cap, limit, self.m, *knobs)
        if status != OK:
            return math.inf
        makespan = float(end.max()) if end.size else 0.0
        if makespan < self.best[0]:
            order = np.argsort(rank, kind="stable")
            counts = np.bincount(rank, minlength=self.p)
            row_start = np.concatenate([[0], np.cumsum(counts)])
            enc = encoded_arrays(stage[order], kind[order], mb[order], row_start, placement,
                                 self.m)
            schedule = Schedule.from_arrays("synth", placement, enc, self.m)
            shape = ("one stage per rank" if self.v == 1 else "V" if
                     placement == v_shape_placement(self.p) else "interleaved")
            origin = (f"list scheduling ({shape} placement, backward first {knobs[0]}, "
                      f"deeper forwards first {knobs[1]}, W policy {knobs[2]}, in-flight "
                      f"limits {limit.tolist()})")
            self.best = (makespan, schedule, origin)
        return makespan


def _limits(p: int, m: int, placement: tuple[int, ...], alpha: float) -> np.ndarray:
    stages, v = len(placement), len(placement) // p
    lowest = [min(s for s, r in enumerate(placement) if r == rank) for rank in range(p)]
    if math.isinf(alpha):
        return np.full(p, m, np.int64)
    return np.array([max(1, min(m, math.ceil(alpha * (stages - lowest[r]) / v)))
                     for r in range(p)], np.int64)


def _fixed(problem: _Problem) -> dict[str, Real | None]:
    out: dict[str, Real | None] = {}
    for name in FIXED_BY_CHUNKS.get(problem.v, ()):
        try:
            sched = _GENERATORS[name](problem.p, problem.m)
        except ValueError:
            out[name] = None
            continue
        peaks = peak_memory(encode(sched), problem.held, problem.pending)
        if any(peak > cap * (1 + 1e-12) for peak, cap in zip(peaks, problem.cap, strict=True)):
            out[name] = None
            continue
        out[name] = simulate(sched, problem.costs).makespan
        if float(out[name]) < problem.best[0]:
            renamed = Schedule.from_arrays("synth", sched.placement, encode(sched), problem.m)
            problem.best = (float(out[name]), renamed, f"the fixed schedule {name}")
    return out


def synthesis_report(stage_costs: CostModel, memory_cap: Real | Sequence[Real] | None,
                     p: int, m: int, v: int = 1, *, activation: Sequence[Real] | None = None,
                     pending: Sequence[Real] | None = None,
                     budget: int = DEFAULT_BUDGET, compare: bool = True) -> SynthesisReport:
    """Synthesise a schedule (module docstring) and say how it compares.

    ``stage_costs``: a :class:`~ringpipe.schedules.simulate.CostModel` with one F, I and W
    cost per stage (p·v of them) and the message time; ``memory_cap``: activation memory
    per rank (one number, one per rank, or None for no cap) in the units of
    ``activation`` (per stage and micro-batch, from F to I; default 1) and ``pending``
    (from I to W; default 0); ``budget``: list schedules to try (at least the grid's
    first point); ``compare``: also time the fixed schedules and answer with one of them
    when it is faster (a caller that searches them anyway, the planner, passes False).
    ValueError when one micro-batch does not fit under the cap.
    """
    if not isinstance(stage_costs, CostModel):
        raise TypeError(f"stage_costs: expected a CostModel, got {type(stage_costs).__name__}")
    p, m, v = check_int("p", p), check_int("m", m), check_int("v", v)
    budget = check_int("budget", budget)
    stages = p * v
    for name in ("forward", "backward_input", "backward_weight"):
        stage_costs.per_stage(name, stages)  # ValueError on a wrong length
    problem = _Problem(p, m, v, stage_costs, _per_stage("activation", activation, stages, 1.0),
                       _per_stage("pending", pending, stages, 0.0),
                       _per_rank("memory_cap", memory_cap, p))
    placements = _placements(p, v)
    for placement in placements:
        for r in range(p):
            need = sum(problem.held[s] for s, q in enumerate(placement) if q == r)
            if need > problem.cap[r] * (1 + 1e-12) and len(placements) == 1:
                raise ValueError(f"memory_cap: pipeline rank {r} needs {need:g} to hold one "
                                 f"micro-batch of its stages, the cap is {problem.cap[r]:g}")
    # the most promising knobs first, so that a small budget still tries every placement
    # and in-flight limit (backward first, W filling gaps)
    grid = [(pl, a, (back, late, w)) for back, w in ((True, 1), (True, 0), (False, 1),
                                                     (True, 2), (False, 0), (False, 2))
            for late in (True, False) for a in _ALPHAS for pl in placements]
    best_point = None
    for placement, alpha, knobs in grid[:budget]:
        limit = _limits(p, m, placement, alpha)
        before = problem.best[0]
        problem.run(placement, limit, knobs)
        if problem.best[0] < before:
            best_point = (placement, limit, knobs)
    while best_point is not None and problem.runs < budget:
        placement, limit, knobs = best_point
        improved = False
        for r in range(p):
            for step in (-1, 1):
                if problem.runs >= budget:
                    break
                trial = limit.copy()
                trial[r] = min(m, max(1, trial[r] + step))
                if trial[r] == limit[r]:
                    continue
                before = problem.best[0]
                problem.run(placement, trial, knobs)
                if problem.best[0] < before:
                    limit, improved = trial, True
        best_point = (placement, limit, knobs) if improved else None
    fixed = _fixed(problem) if compare else {}
    makespan, schedule, origin = problem.best
    if schedule is None:
        raise ValueError("memory_cap: no placement lets one micro-batch through under the cap")
    order = validate(schedule)
    exact = simulate(schedule, stage_costs, execution_order=order).makespan
    return SynthesisReport(schedule, exact, origin, fixed, problem.runs)


def synthesize(stage_costs: CostModel, memory_cap: Real | Sequence[Real] | None, p: int,
               m: int, v: int = 1, **options: object) -> Schedule:
    """The synthesised schedule of :func:`synthesis_report` (same arguments)."""
    return synthesis_report(stage_costs, memory_cap, p, m, v, **options).schedule  # type: ignore[arg-type]
