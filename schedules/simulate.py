"""The simulator: time a schedule under per-action costs and an alpha-beta message model.

Each rank runs its list in order; an action starts when the rank is free and its
inputs are present. Costs per stage s: ``forward[s]`` for F, ``backward_input[s]``
for I, ``backward_weight[s]`` for W, and ``B = I + W`` for a full backward. A
message between stages on different ranks takes ``alpha + bytes / bandwidth``
(p2p latency plus size over bandwidth) and overlaps with compute; a tensor handed
over on the same rank is free. Communication is modelled as fully overlapped
(isend/irecv, waited on by the consumer): SEND and RECV take no rank time, a
message leaves when its SEND is reached, and the compute action that needs it
starts no earlier than its arrival. So the same schedule with or without explicit
SEND/RECV actions, wherever the communication pass put them, times the same.
(Whether blocking sends can deadlock is the validator's question, not a cost.)

Outputs: each rank's timeline (start and end of every action), the makespan, the
bubble fraction = idle rank-time / (p * makespan), and peak activations: a stage
holds a micro-batch's activations from the start of its F until the end of its B,
or of its I when backward is split (I consumes them; a deferred W keeps only what
the weight gradient needs, counted as a pending weight pass).

Integer or :class:`fractions.Fraction` costs give exact results: they are scaled
by the least common denominator to int64, timed exactly by a Numba loop, and
scaled back, so times are ints or Fractions and the bubble fraction is a Fraction.
Any float cost switches to float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from numbers import Rational, Real
from typing import NamedTuple

import numpy as np

from ringpipe.schedules import sim_kernels
from ringpipe.schedules.actions import Action
from ringpipe.schedules.schedule import Schedule
from ringpipe.schedules.validate import ExecutionOrder, validate

Cost = Real | Sequence[Real]
_EXACT_LIMIT = 2**62  # beyond this, the exact path runs the loop on Python ints


def _exact_div(numerator: Real, denominator: Real) -> Real:
    if isinstance(numerator, Rational) and isinstance(denominator, Rational):
        q = Fraction(numerator) / Fraction(denominator)
        return q.numerator if q.denominator == 1 else q
    return numerator / denominator


@dataclass(frozen=True)
class CostModel:
    """Per-stage compute costs and the point-to-point message model.

    Each compute cost is one number for every stage, or a sequence with one entry
    per stage. ``p2p_bandwidth=None`` means infinite bandwidth.
    """

    forward: Cost = 1
    backward_input: Cost = 1
    backward_weight: Cost = 1
    p2p_latency: Real = 0
    p2p_bandwidth: Real | None = None
    message_bytes: Real = 0

    def __post_init__(self) -> None:
        for name in ("forward", "backward_input", "backward_weight"):
            value = getattr(self, name)
            values = value if isinstance(value, Sequence) else [value]
            if not values:
                raise ValueError(f"{name}: per-stage sequence must not be empty")
            for v in values:
                if isinstance(v, bool) or not isinstance(v, Real):
                    raise TypeError(f"{name}: expected a real number, got {type(v).__name__}")
                if not math.isfinite(v) or v < 0:  # a NaN would silently drop every wait
                    raise ValueError(f"{name}: costs must be finite and >= 0, got {v}")
        for name in ("p2p_latency", "message_bytes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name}: must be a finite real number >= 0, got {v!r}")
        bw = self.p2p_bandwidth
        if bw is not None and (isinstance(bw, bool) or not isinstance(bw, Real) or not bw > 0):
            raise ValueError(f"p2p_bandwidth: must be a real number > 0 or None, got {bw!r}")

    def per_stage(self, name: str, num_stages: int) -> list[Real]:
        """The cost ``name`` as a list with one entry per stage."""
        value = getattr(self, name)
        if not isinstance(value, Sequence):
            return [value] * num_stages
        if len(value) != num_stages:
            raise ValueError(f"{name}: got {len(value)} per-stage costs for {num_stages} stages")
        return list(value)

    @property
    def message_time(self) -> Real:
        """alpha + bytes / bandwidth: the time one activation or gradient message takes."""
        if self.p2p_bandwidth is None or not self.message_bytes:
            return self.p2p_latency
        return self.p2p_latency + _exact_div(self.message_bytes, self.p2p_bandwidth)


class TimedAction(NamedTuple):
    """An action with its start and end time on its rank; ``pair`` is the overlapped
    pair it is a half of (None for a lone action)."""

    action: Action
    start: Real
    end: Real
    pair: Action | None = None


@dataclass(frozen=True)
class SimulationResult:
    """What :func:`simulate` measured; per-rank tuples are indexed by rank.

    ``peak_activations`` is per rank (all its stages together);
    ``peak_pending_weight_passes`` counts micro-batches between I and W.
    """

    schedule: Schedule
    costs: CostModel
    makespan: Real
    busy: tuple[Real, ...]
    bubble_fraction: Real
    peak_activations_per_stage: tuple[int, ...]
    peak_activations: tuple[int, ...]
    peak_pending_weight_passes: tuple[int, ...]
    _start: np.ndarray = field(repr=False, compare=False)
    _end: np.ndarray = field(repr=False, compare=False)
    _row_start: np.ndarray = field(repr=False, compare=False)
    _scale: int | None = field(repr=False, compare=False)

    @property
    def idle(self) -> tuple[Real, ...]:
        """Idle time of each rank within the makespan."""
        return tuple(self.makespan - b for b in self.busy)

    @cached_property
    def timelines(self) -> tuple[tuple[TimedAction, ...], ...]:
        """Per rank, every elementary action (idle slots skipped; an overlapped pair as
        its two halves, each naming the pair) with its start and end time."""
        return tuple(self.timeline(rank) for rank in range(len(self.schedule.actions)))

    def timeline(self, rank: int) -> tuple[TimedAction, ...]:
        """Rank ``rank``'s elementary actions with their start and end times: one row of
        :attr:`timelines`, without building the others."""
        convert = _from_scaled(self._scale)
        row = self.schedule.actions[rank]
        base = int(self._row_start[rank])
        count = sum(1 if a is None else len(a.parts) for a in row)
        starts = self._start[base : base + count].tolist()
        ends = self._end[base : base + count].tolist()
        line, j = [], 0
        for a in row:
            if a is None:
                j += 1
                continue
            pair = a if a.sub_actions is not None else None
            for part in a.parts:
                line.append(TimedAction(part, convert(starts[j]), convert(ends[j]), pair))
                j += 1
        return tuple(line)


def _from_scaled(scale: int | None):  # noqa: ANN202
    if scale is None:
        return float
    if scale == 1:
        return int

    def exact(value: int) -> Real:
        q = Fraction(int(value), scale)
        return q.numerator if q.denominator == 1 else q

    return exact


def _cost_arrays(
    costs: CostModel, num_stages: int, num_slots: int
) -> tuple[list[np.ndarray], object, int | None]:
    """Per-stage cost arrays, the message time and the scale of the exact path.

    Rational costs are multiplied by the least common denominator ``scale``: int64
    arrays when the largest possible time fits, object arrays of Python ints
    otherwise. Any float cost gives float64 arrays and ``scale = None``.
    """
    per_stage = [
        costs.per_stage(n, num_stages) for n in ("forward", "backward_input", "backward_weight")
    ]
    msg = costs.message_time
    values = [v for row in per_stage for v in row] + [msg]
    if not all(isinstance(v, Rational) for v in values):
        return [np.array(row, dtype=np.float64) for row in per_stage], np.float64(msg), None
    scale = math.lcm(*(Fraction(v).denominator for v in values))
    scaled = [[int(Fraction(v) * scale) for v in row] for row in per_stage]
    msg_scaled = int(Fraction(msg) * scale)
    bound = (sum(max(row) for row in scaled) + msg_scaled) * (num_slots + 1)
    if bound < _EXACT_LIMIT:
        return [np.array(row, dtype=np.int64) for row in scaled], np.int64(msg_scaled), scale
    return [np.array(row, dtype=object) for row in scaled], msg_scaled, scale


def simulate(
    schedule: Schedule,
    costs: CostModel | None = None,
    *,
    execution_order: ExecutionOrder | None = None,
) -> SimulationResult:
    """Validate ``schedule`` and time it under ``costs`` (default: F = I = W = 1, free comms).

    Pass the :class:`ExecutionOrder` returned by ``validate(schedule)`` to skip
    validating twice.
    """
    costs = CostModel() if costs is None else costs
    if not isinstance(costs, CostModel):
        raise TypeError(f"costs: expected CostModel, got {type(costs).__name__}")
    if execution_order is None:
        execution_order = validate(schedule)
    elif not isinstance(execution_order, ExecutionOrder):
        raise TypeError(f"execution_order: expected the ExecutionOrder that validate() "
                        f"returned, got {type(execution_order).__name__}")
    elif execution_order.schedule is not schedule:
        raise ValueError("execution_order: was computed for a different schedule")
    enc = execution_order.encoded
    (fwd, bwd_i, bwd_w), msg, scale = _cost_arrays(costs, schedule.num_stages, len(enc.stage))
    # int64 could overflow: the same loop, uncompiled, on Python ints (exact but slow)
    kernel = sim_kernels.simulate_kernel
    kernel = kernel.py_func if fwd.dtype == object else kernel
    start, end, busy, free, peak_stage, peak_rank, peak_w = kernel(
        *enc.program,
        execution_order.order,
        fwd,
        bwd_i,
        bwd_w,
        msg,
    )
    convert = _from_scaled(scale)
    makespan_raw = free.max()
    total = schedule.num_ranks * makespan_raw
    idle = total - busy.sum()
    if scale is None:
        bubble: Real = float(idle / total) if total else 0.0
    else:
        bubble = Fraction(int(idle), int(total)) if total else Fraction(0)
    return SimulationResult(
        schedule=schedule,
        costs=costs,
        makespan=convert(makespan_raw),
        busy=tuple(convert(b) for b in busy.tolist()),
        bubble_fraction=bubble,
        peak_activations_per_stage=tuple(peak_stage.tolist()),
        peak_activations=tuple(peak_rank.tolist()),
        peak_pending_weight_passes=tuple(peak_w.tolist()),
        _start=start,
        _end=end,
        _row_start=enc.row_start,
        _scale=scale,
    )
