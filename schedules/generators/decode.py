"""Forward-only inference schedules: prefill, and decode with groups in flight.

Generation is a chain of forward passes: token k of a sequence needs token k-1, which
the *last* pipeline rank produces and the *first* consumes. That chain is written in
the ordinary IR by unrolling the token steps into virtual stages: with p pipeline
ranks and K token steps there are K·p stages, stage ``s = k·p + r`` being pipeline
rank r's layers at token step k, placed on rank ``s % p`` (Megatron's interleaved
placement with v = K). ``F(k·p + p-1, g) -> F((k+1)·p, g)`` is then a plain stage
boundary: its message, added by :func:`~ringpipe.schedules.add_communication` like any
other, is the token hand-back from the last rank to the first. The validator, the
simulator, the views and the runtimes need no inference special case.

A *micro-batch* is a group of sequences. Rank r runs, for each step k, the groups in
order: ``F(k·p + r, 0) .. F(k·p + r, G-1)``. With G = p groups every rank works on a
different group at every moment once the pipeline is full, as in TensorRT-LLM's and
DeepSpeed-Inference's pipelined decoding (Aminabadi et al., SC'22, section 5.2): one
group's token crosses the p ranks while the other p-1 groups occupy the rest. More
than p groups add no throughput, only waiting.

* ``prefill(p, G)``: one step, the prompt (all L positions per sequence) through the
  p ranks; the last rank's output is each sequence's first generated token;
* ``decode(p, G, K)``: K token steps; step 0 is the prefill, steps 1..K-1 decode one
  position per sequence against the KV cache, so ``decode(p, G, 1) == prefill(p, G)``
  up to the name;
* ``continuous(p, lanes)``: continuous batching (:mod:`ringpipe.runtime.batching`), where a
  micro-batch is a *lane* and each of its steps one scheduler iteration (whatever
  requests that iteration holds). ``lanes[n]`` is the lane of the n-th iteration to start;
  every rank runs the iterations in that order, and lanes with fewer iterations are padded
  at the end (empty iterations) so that every stage runs every lane. With G lanes taking
  turns, ``continuous(p, [0, .., G-1] * K) == decode(p, G, K)`` up to the name.

:func:`inference_timing` times a schedule with the simulator and reads off each
token's latency (time to first token for step 0, time per output token after) and
the steady-state token rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real

import numpy as np

from ringpipe.schedules.actions import Action, ActionKind, interleaved_placement
from ringpipe.schedules.schedule import Schedule
from ringpipe.schedules.simulate import CostModel, simulate
from ringpipe.validation import check_int, check_real

__all__ = ["InferenceTiming", "continuous", "decode", "inference_timing", "prefill",
           "prefill_ttft", "token_step"]


def decode(num_ranks: int, num_groups: int, steps: int = 2) -> Schedule:
    """K = ``steps`` token steps of G = ``num_groups`` groups on p = ``num_ranks`` ranks
    (module docstring); ``steps`` is the schedule's chunks per rank v."""
    p = check_int("num_ranks", num_ranks)
    g = check_int("num_microbatches (groups)", num_groups)
    k = check_int("chunks_per_rank (token steps)", steps)
    rows = tuple(
        tuple(Action(t * p + r, ActionKind.FORWARD, j) for t in range(k) for j in range(g))
        for r in range(p)
    )
    return Schedule("decode" if k > 1 else "prefill", interleaved_placement(p, k), rows, g)


def continuous(num_ranks: int, lanes: Sequence[int], num_lanes: int | None = None) -> Schedule:
    """Iterations in start order ``lanes`` (each entry a lane id) on p = ``num_ranks``
    ranks, with ``num_lanes`` lanes (default: max(lanes) + 1); module docstring."""
    p = check_int("num_ranks", num_ranks)
    order = [check_int(f"lanes[{n}]", g, 0) for n, g in enumerate(lanes)]
    g = check_int("num_lanes", (max(order) + 1 if order else 1) if num_lanes is None
                  else num_lanes, max(order) + 1 if order else 1)
    counts = [order.count(j) for j in range(g)]
    k = max(max(counts), 1)
    order += [j for step in range(k) for j in range(g) if step >= counts[j]]
    seen = [0] * g
    steps = []
    for j in order:
        steps.append((seen[j], j))
        seen[j] += 1
    rows = tuple(tuple(Action(t * p + r, ActionKind.FORWARD, j) for t, j in steps)
                 for r in range(p))
    return Schedule("continuous", interleaved_placement(p, k), rows, g)


def prefill(num_ranks: int, num_groups: int) -> Schedule:
    """The prompt's forward pass: G groups through p ranks, one step."""
    return decode(num_ranks, num_groups, 1)


def token_step(stage: int, num_ranks: int) -> tuple[int, int]:
    """``(k, r)`` of virtual stage ``stage = k·p + r``: its token step and pipeline rank."""
    return divmod(stage, num_ranks)


@dataclass(frozen=True)
class InferenceTiming:
    """When each group's tokens come out. ``token_times[g, k]``: end of step k's last
    stage for group g; ``token_latency[g, 0]`` = that time (time to first token),
    ``token_latency[g, k]`` = the gap since token k-1 (time per output token)."""

    token_times: np.ndarray
    token_latency: np.ndarray
    makespan: float

    @property
    def ttft(self) -> float:
        """The slowest group's time to first token."""
        return float(self.token_times[:, 0].max())

    @property
    def tpot(self) -> float:
        """Mean time per output token after the first, over groups and steps (0 when
        there is one step)."""
        lat = self.token_latency[:, 1:]
        return float(lat.mean()) if lat.size else 0.0

    @property
    def steady_rate(self) -> float:
        """Decode throughput in group-tokens per unit time: G·(K-1) tokens between the
        last group's first and last token (0 when there is one step). Multiply by the
        sequences per group for tokens per unit time."""
        groups, steps = self.token_times.shape
        span = float(self.token_times[:, -1].max() - self.token_times[:, 0].max())
        return groups * (steps - 1) / span if steps > 1 and span > 0 else 0.0


def _per_rank(name: str, value: Real | Sequence[Real], p: int) -> list[Real]:
    """``value`` as one cost per rank, each a finite number >= 0: NaN would compare as
    "not negative" in the simulator and turn every timing into NaN, an infinity every
    timing into inf. The values are returned unconverted, so exact Fractions stay exact."""
    many = isinstance(value, Sequence) and not isinstance(value, (str, bytes))
    values = list(value) if many else [value] * p
    if len(values) != p:
        raise ValueError(f"{name}: got {len(values)} per-rank costs for {p} pipeline ranks")
    for i, v in enumerate(values):
        check_real(f"{name}[{i}]" if many else name, v, 0.0)
    return values


def inference_timing(schedule: Schedule, prefill_cost: Real | Sequence[Real],
                     decode_cost: Real | Sequence[Real], p2p_latency: Real = 0
                     ) -> InferenceTiming:
    """Simulate a :func:`decode` / :func:`prefill` schedule and read each token's time.

    ``prefill_cost`` / ``decode_cost``: one pipeline rank's forward time for one group
    at step 0 / at a decode step (one number, or one per rank); ``p2p_latency``: the
    time of every message between ranks, the token hand-back included. Every cost must
    be a finite number >= 0 (TypeError/ValueError naming it otherwise).
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule: expected Schedule, got {type(schedule).__name__}")
    p, steps = schedule.num_ranks, schedule.chunks_per_rank
    if schedule.kinds - {ActionKind.FORWARD, ActionKind.SEND_F, ActionKind.RECV_F}:
        raise ValueError(f"schedule: {schedule.name} is not forward-only")
    check_real("p2p_latency", p2p_latency, 0.0)
    pre = _per_rank("prefill_cost", prefill_cost, p)
    dec = _per_rank("decode_cost", decode_cost, p)
    forward = [pre[s % p] if s < p else dec[s % p] for s in range(p * steps)]
    result = simulate(schedule, CostModel(forward=forward, p2p_latency=p2p_latency))
    times = np.zeros((schedule.num_microbatches, steps))
    for timed in result.timeline(p - 1):  # only the last rank's: it emits the tokens
        k, r = token_step(timed.action.stage, p)
        if timed.action.kind is ActionKind.FORWARD and r == p - 1:
            times[timed.action.microbatch, k] = float(timed.end)
    latency = np.diff(times, axis=1, prepend=0.0)
    return InferenceTiming(times, latency, float(result.makespan))


def prefill_ttft(prefill_cost: Sequence[Real], p2p_latency: Real, num_groups: int) -> float:
    """The time to first token of ``prefill(p, G)``, without building or simulating it:
    ``inference_timing(prefill(p, G), c, c, h).ttft`` (tested equal), in O(p).

    The G groups are identical jobs through p ranks in order, each message taking h.
    Group g leaves rank r at E(g, r) = max(E(g, r-1) + h, E(g-1, r)) + c_r, and by
    induction on r, E(g, r) = Σ_{q<=r} c_q + r·h + g·max_{q<=r} c_q: the slowest rank so
    far paces the groups (the flow shop with identical jobs). The last group leaves the
    last rank at Σ c + (p-1)·h + (G-1)·max c. ``prefill_cost``: one group's forward time
    on each rank (finite, >= 0); ``num_groups`` >= 1.
    """
    g = check_int("num_groups", num_groups)
    check_real("p2p_latency", p2p_latency, 0.0)
    if isinstance(prefill_cost, (str, bytes)) or not isinstance(prefill_cost, Sequence) \
            or not prefill_cost:
        raise TypeError("prefill_cost: expected one cost per pipeline rank")
    costs = _per_rank("prefill_cost", prefill_cost, len(prefill_cost))
    return float(sum(costs) + (len(costs) - 1) * p2p_latency + (g - 1) * max(costs))
