"""The pipeline part of a step, timed by ringpipe's schedule simulator (not a formula).

A configuration's pipeline is the registered schedule ``name`` on p ranks with m
micro-batches and v chunks per rank (:func:`ringpipe.schedules.generate`). Its
timing comes from :func:`ringpipe.schedules.simulate` with per-stage costs (forward,
input-gradient and weight-gradient seconds for each of the p·v stages) and the
point-to-point message time, so uneven stages, the logit layer on the last stage and
communication delays all shape the bubble. Messages are overlapped with compute
(isend/irecv), as the simulator models them.

With uniform costs and free messages the simulator reproduces the closed forms,
e.g. (p-1)/(m+p-1) for 1F1B (Narayanan et al., SC'21, §2.2.1); the planner never
uses those formulas.

Cost: generating and dry-running a schedule dominates, so :class:`PipelineSimulator`
memoises the schedule and its execution order per (name, p, m, v) (at most
``max_schedule_cells`` cells of them, the least recently used dropped first) and the
peak in-flight micro-batches per rank, which depend only on each rank's action order (a
forward adds one, a backward or input-gradient pass removes one), not on the costs.
:meth:`PipelineSimulator.peak_bytes` walks the same order with each stage's own bytes
(:mod:`.stages`): F adds what the stage holds per micro-batch, B removes it, I trades
it for what the weight pass needs and W frees that.

Long pipelines (more than :data:`STEADY_AFTER` · p micro-batches, e.g. 1536
micro-batches on 8 stages) are not simulated whole. Once a schedule reaches its
steady state, every further 2p micro-batches add the same time to the makespan (and
the same count to the peaks), so the simulator runs at three micro-batch counts
m0 < m1 < m2 (each ≡ m mod 2p, 14p < m2 <= 16p) and extrapolates linearly from m2 —
but only after checking that both differences agree (to 1e-9 relative). Where they do
not (a schedule whose start-up lasts longer, as ZB-V's can with uneven stages), it
tries windows twice as far out, up to :data:`SAMPLE_WINDOWS` of them, and only then
simulates the whole pipeline. Every schedule it builds counts against
``max_schedule_cells`` (:class:`ringpipe.limits.Limits`): a pipeline that would need
a longer whole simulation is refused with a ValueError naming the limit, so neither
the time nor the memory of pricing grows with the micro-batch count (``ringpipe plan
--global-batch 1000000000`` is priced from the same windows as 10 000). The
generator's constraints on (p, m, v) are checked on the sampled counts, which share m's
residue mod 2p. Busy time per rank is exactly m times the rank's per-micro-batch cost,
so the bubble fraction follows from the makespan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ringpipe.limits import DEFAULT_LIMITS, Limits
from ringpipe.schedules import CostModel, Schedule, simulate
from ringpipe.schedules.memory import peak_memory, walk_plan
from ringpipe.schedules.registry import generate, schedule_spec
from ringpipe.schedules.validate import ExecutionOrder, execution_order


@dataclass(frozen=True)
class StageCosts:
    """Seconds per micro-batch for each of the p·v stages, and the message time."""

    forward: tuple[float, ...]
    backward_input: tuple[float, ...]
    backward_weight: tuple[float, ...]
    message_time: float = 0.0

    def __post_init__(self) -> None:
        n = len(self.forward)
        if n == 0 or len(self.backward_input) != n or len(self.backward_weight) != n:
            raise ValueError("StageCosts: forward, backward_input and backward_weight need "
                             "one entry per stage, the same number each")


@dataclass(frozen=True)
class PipelineTiming:
    """What the simulator measured: makespan (s), bubble fraction, peaks per rank."""

    makespan: float
    bubble_fraction: float
    busy: tuple[float, ...]
    peak_in_flight: tuple[int, ...]


#: Pipelines of up to STEADY_AFTER · p micro-batches are simulated whole.
STEADY_AFTER = 16
#: Sampling windows tried at most: ending near STEADY_AFTER · p · 2^k, k < SAMPLE_WINDOWS.
SAMPLE_WINDOWS = 4


def _window(p: int, m: int, top: int) -> tuple[int, int, int]:
    period = 2 * p
    m2 = m - math.ceil((m - top) / period) * period
    return m2 - 2 * period, m2 - period, m2


def sample_windows(p: int, m: int) -> list[tuple[int, int, int]]:
    """The (m0, m1, m2) windows to extrapolate from, in the order tried: each ≡ m mod
    2p, ending within 2p below STEADY_AFTER · p · 2^k (k = 0, 1, ...) and below m; []
    to simulate all m micro-batches."""
    out, top = [], STEADY_AFTER * p
    for _ in range(SAMPLE_WINDOWS):
        if m <= top:
            break
        out.append(_window(p, m, top))
        top *= 2
    return out


def sample_points(p: int, m: int) -> tuple[int, int, int] | None:
    """(m0, m1, m2) of the first window, or None to simulate all m micro-batches."""
    windows = sample_windows(p, m)
    return windows[0] if windows else None


class PricingLimit(ValueError):
    """A schedule too large to simulate within ``max_schedule_cells``: the search stops
    with it (exit 2 on the command line) rather than drop the candidate silently."""


def _agree(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@dataclass(frozen=True)
class PipelineSimulator:
    """Runs the schedule simulator for the cost model; memoises per (name, p, m, v).
    ``limits``: ``max_schedule_cells`` bounds every schedule it builds (p·v·m cells), so
    that pricing never grows with the micro-batch count (module docstring)."""

    limits: Limits = DEFAULT_LIMITS
    _orders: dict = field(default_factory=dict, repr=False, compare=False)
    _peaks: dict = field(default_factory=dict, repr=False, compare=False)
    _cells: dict = field(default_factory=dict, repr=False, compare=False)

    def order(self, name: str, p: int, m: int, v: int) -> ExecutionOrder:
        """The generated schedule's execution order (raises ScheduleError/ValueError
        when the generator rejects p, m, v). The memo keeps at most
        ``max_schedule_cells`` cells of schedules, least recently used evicted first, so
        a search's memory stays bounded too."""
        key = (name, p, m, v)
        if key in self._orders:
            self._orders[key] = self._orders.pop(key)  # most recently used last
            if key in self._cells:
                self._cells[key] = self._cells.pop(key)
        else:
            try:
                self.limits.require(
                    "max_schedule_cells", f"schedule size p·v·m of {name} with p={p}, "
                    f"v={v}, m={m} micro-batches, to simulate whole (its timing did not "
                    "settle into a steady state to extrapolate from)", p * v * m)
            except ValueError as exc:
                raise PricingLimit(str(exc)) from None
            sched: Schedule = generate(name, p, m, v if schedule_spec(name).takes_chunks
                                       else None)
            cells = p * v * m
            while self._cells and sum(self._cells.values()) + cells \
                    > self.limits.max_schedule_cells:  # adopted schedules are not counted
                oldest = next(iter(self._cells))
                del self._orders[oldest], self._cells[oldest]
            self._orders[key] = execution_order(sched)
            self._cells[key] = cells
        return self._orders[key]

    def adopt(self, schedule: Schedule) -> tuple[str, int]:
        """Register a schedule built elsewhere (a synthesised one); returns the name to
        use for it in the other methods (which then never extrapolate)."""
        key = ("synth", sum(isinstance(k[0], tuple) for k in self._orders))  # never evicted
        self._orders[(key, schedule.num_ranks, schedule.num_microbatches,
                      schedule.chunks_per_rank)] = execution_order(schedule)
        return key

    def placement(self, name: str, p: int, m: int, v: int) -> tuple[int, ...]:
        """The rank holding each stage; ValueError when the generator rejects
        (p, m, v) (checked on the count actually simulated)."""
        points = None if isinstance(name, tuple) else sample_points(p, m)
        return self.order(name, p, m if points is None else points[2], v).schedule.placement

    def _peaks_exact(self, name: str, p: int, m: int, v: int,
                     per_stage: bool = False) -> tuple[int, ...]:
        key = (name, p, m, v)
        if key not in self._peaks:
            order = self.order(name, p, m, v)
            result = simulate(order.schedule, execution_order=order)
            self._peaks[key] = result.peak_activations
            self._peaks[("stage", *key)] = result.peak_activations_per_stage
        return self._peaks[("stage", *key)] if per_stage else self._peaks[key]

    def _windows(self, p: int, m: int, v: int, name: object = "") -> list[tuple[int, int, int]]:
        """The sampling windows whose schedules fit ``max_schedule_cells``; none for an
        adopted schedule, which exists for its own m only."""
        if isinstance(name, tuple):
            return []
        cap = self.limits.max_schedule_cells
        return [w for w in sample_windows(p, m) if p * v * w[2] <= cap]

    def _extrapolated(self, exact, p: int, m: int, v: int,  # noqa: ANN001 - memoised
                      name: object) -> tuple:
        """``exact(m)``, or for long pipelines its linear extrapolation from three sampled
        counts of the first window whose differences agree (module docstring)."""
        for points in self._windows(p, m, v, name):
            a, b, c = (exact(x) for x in points)
            if all(_agree(z - y, y - x) for x, y, z in zip(a, b, c, strict=True)):
                steps = (m - points[2]) // (points[2] - points[1])
                return tuple(type(z)(z + steps * (z - y)) for y, z in zip(b, c, strict=True))
        return exact(m)

    def peak_in_flight(self, name: str, p: int, m: int, v: int) -> tuple[int, ...]:
        """Most (stage, micro-batch) activations each rank holds at once."""
        return self._extrapolated(lambda mm: self._peaks_exact(name, p, mm, v), p, m, v, name)

    def peak_per_stage(self, name: str, p: int, m: int, v: int) -> tuple[int, ...]:
        """Most micro-batches each stage holds at once (F to B or I)."""
        return self._extrapolated(lambda mm: self._peaks_exact(name, p, mm, v, True), p, m, v, name)

    def peak_bytes(self, name: str, p: int, m: int, v: int, held: tuple[float, ...],
                   pending: tuple[float, ...], transient: tuple[float, ...]) -> tuple[float, ...]:
        """Peak bytes of activations each rank holds (module docstring): the walk of its
        actions with per-stage ``held``/``pending`` bytes, plus a stage's ``transient``
        bytes during its backward."""
        def exact(mm: int) -> tuple[float, ...]:
            key = ("bytes", name, p, mm, v, held, pending, transient)
            if key not in self._peaks:
                prep = ("walk", name, p, mm, v)
                if prep not in self._peaks:
                    self._peaks[prep] = walk_plan(self.order(name, p, mm, v).encoded)
                self._peaks[key] = peak_memory(self._peaks[prep], held, pending, transient)
            return self._peaks[key]
        return self._extrapolated(exact, p, m, v, name)

    def _makespan(self, name: str, p: int, m: int, v: int, model: CostModel) -> float:
        order = self.order(name, p, m, v)
        return float(simulate(order.schedule, model, execution_order=order).makespan)

    def time(self, name: str, p: int, m: int, v: int, costs: StageCosts) -> PipelineTiming:
        """Simulate the schedule under ``costs`` (extrapolated when long, see module doc)."""
        placement = self.placement(name, p, m, v)
        if len(costs.forward) != len(placement):
            raise ValueError(f"StageCosts: {len(costs.forward)} stages given, the schedule "
                             f"has {len(placement)}")
        model = _cost_model(costs)
        per_mb = [0.0] * p
        for stage, rank in enumerate(placement):
            per_mb[rank] += (costs.forward[stage] + costs.backward_input[stage]
                             + costs.backward_weight[stage])
        makespan = None
        for points in self._windows(p, m, v, name):
            t0, t1, t2 = (self._makespan(name, p, x, v, model) for x in points)
            if _agree(t2 - t1, t1 - t0):
                makespan = t2 + (m - points[2]) / (points[2] - points[1]) * (t2 - t1)
                break
        if makespan is None:
            makespan = self._makespan(name, p, m, v, model)
        busy = tuple(m * c for c in per_mb)
        bubble = max(0.0, 1.0 - sum(busy) / (p * makespan)) if makespan > 0 else 0.0
        return PipelineTiming(makespan, bubble, busy, self.peak_in_flight(name, p, m, v))


def _cost_model(costs: StageCosts) -> CostModel:
    def seq(values: Sequence[float]) -> list[float]:
        return [float(x) for x in values]

    return CostModel(forward=seq(costs.forward), backward_input=seq(costs.backward_input),
                     backward_weight=seq(costs.backward_weight),
                     p2p_latency=float(costs.message_time))
