"""The serving loop: a scheduler, a clock and arrivals, one iteration at a time.

:func:`serve` drives a :class:`~ringpipe.runtime.batching.policy.Scheduler` the way an
engine's main loop does. The clock is the price of each iteration (a callable returning
each pipeline rank's seconds and the seconds of one message between ranks): the inference
cost model in the simulator, the same or any deterministic price for the CPU runtime,
which then executes exactly the iterations the loop formed (:mod:`.worker`).

**Pipeline timing.** With p ranks, an iteration of lane g starts on rank 0 when rank 0 is
free and lane g's previous tokens are back; rank r starts it when it is free and rank r-1
has finished it plus one hop; its tokens exist when the last rank ends, and they are back
on rank 0 one hand-back later. This is the forward-only decode schedule's
recurrence (:mod:`ringpipe.schedules.generators.decode`), with the batch of every
iteration decided only when it starts. Iterations start on rank 0 in the order they are
formed, and every rank runs them in that order.

**Events.** Before forming an iteration at time t the loop applies every completion up to
t (finished requests leave and free their blocks; a closed-loop client sends its next
request) and every arrival up to t. A lane with nothing it can run waits for the next
arrival or completion.

**Arrivals.** :class:`OpenLoop`: requests at given times (Poisson, a trace).
:class:`ClosedLoop`: C clients, each sending its next request the moment the last one's
final token arrives (AIPerf's and genai-perf's ``--concurrency``).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from ringpipe.runtime.batching.policy import BatchingPolicy, Iteration, Request
from ringpipe.validation import check_int

__all__ = ["ClosedLoop", "OpenLoop", "RequestRecord", "ServingTrace", "StagePrice",
           "TimedIteration", "round_robin", "serve"]


class StagePrice(NamedTuple):
    """Seconds of one iteration on each pipeline rank, of one message between ranks, and
    of the hand-back of its tokens from the last rank to the first (default: a hop)."""

    stages_s: tuple[float, ...]
    hop_s: float
    handback_s: float | None = None


#: Prices an iteration.
Price = Callable[[Iteration], StagePrice]


class ArrivalSource(Protocol):
    """Where requests come from."""

    def next_time(self) -> float:
        """When the next request arrives (inf: none is due unless a request finishes)."""

    def take(self, until: float) -> list[Request]:
        """The requests that arrived by ``until``, in arrival order."""

    def finished(self, request: int, at: float) -> None:
        """Request ``request`` received its last token at ``at``."""


class OpenLoop:
    """Requests arriving at their own ``arrival_s``, whatever happens to earlier ones."""

    def __init__(self, requests: Sequence[Request]) -> None:
        self._queue = sorted(requests, key=lambda r: (r.arrival_s, r.id))
        self._next = 0

    def next_time(self) -> float:
        return self._queue[self._next].arrival_s if self._next < len(self._queue) else math.inf

    def take(self, until: float) -> list[Request]:
        start = self._next
        while self._next < len(self._queue) and self._queue[self._next].arrival_s <= until:
            self._next += 1
        return self._queue[start:self._next]

    def finished(self, request: int, at: float) -> None:
        """Open loop: nothing follows from a completion."""


class ClosedLoop:
    """``clients[c]``: client c's requests in order (their ``arrival_s`` is ignored): the
    first goes at time 0, each next one when the previous one's last token arrives."""

    def __init__(self, clients: Sequence[Sequence[Request]]) -> None:
        self._rest = [list(c) for c in clients]
        self._client: dict[int, int] = {}
        self._due: list[tuple[float, int, Request]] = []
        for c in range(len(self._rest)):
            self._send(c, 0.0)

    def _send(self, client: int, at: float) -> None:
        if self._rest[client]:
            r = dataclasses.replace(self._rest[client].pop(0), arrival_s=at)
            self._client[r.id] = client
            heapq.heappush(self._due, (at, r.id, r))

    def next_time(self) -> float:
        return self._due[0][0] if self._due else math.inf

    def take(self, until: float) -> list[Request]:
        out = []
        while self._due and self._due[0][0] <= until:
            out.append(heapq.heappop(self._due)[2])
        return out

    def finished(self, request: int, at: float) -> None:
        self._send(self._client[request], at)


def round_robin(items: Sequence, replicas: int, key: Callable | None = None) -> list[list]:
    """DP routing: the n-th item (in ``key`` order, default arrival order for requests)
    goes to replica n mod ``replicas``."""
    check_int("round_robin: replicas", replicas)
    order = sorted(items, key=key or (lambda r: (r.arrival_s, r.id)))
    return [order[d::replicas] for d in range(replicas)]


@dataclass(frozen=True)
class TimedIteration:
    """An iteration, when it started on rank 0 and when its tokens exist (last rank)."""

    iteration: Iteration
    start_s: float
    token_s: float


@dataclass(frozen=True)
class RequestRecord:
    """A served request: its lane, the time of each of its tokens, and whether it ever
    waited for KV blocks."""

    request: Request
    lane: int
    token_s: tuple[float, ...]
    waited_for_blocks: bool

    @property
    def ttft_s(self) -> float:
        """Time to first token: first token time - arrival."""
        return self.token_s[0] - self.request.arrival_s

    @property
    def gaps_s(self) -> tuple[float, ...]:
        """The K - 1 gaps between consecutive tokens."""
        return tuple(b - a for a, b in zip(self.token_s[:-1], self.token_s[1:], strict=True))

    @property
    def itl_s(self) -> float | None:
        """Inter-token latency: (E2E - TTFT) / (K - 1), the mean gap (AIPerf's and
        genai-perf's ITL, vLLM's TPOT); None for a one-token request."""
        k = len(self.token_s)
        return (self.token_s[-1] - self.token_s[0]) / (k - 1) if k > 1 else None

    @property
    def e2e_s(self) -> float:
        """End-to-end latency: last token time - arrival."""
        return self.token_s[-1] - self.request.arrival_s


@dataclass(frozen=True)
class ServingTrace:
    """What :func:`serve` did: every iteration in start order, every request by id, the
    block table each request held (position i in block ``tables[id][i // block_size]``),
    the number of lanes and the most requests one lane ran at once."""

    iterations: tuple[TimedIteration, ...]
    requests: tuple[RequestRecord, ...]
    tables: dict[int, tuple[int, ...]]
    lanes: int
    peak_batch: int

    @property
    def makespan_s(self) -> float:
        """From the first arrival to the last token."""
        if not self.requests:
            return 0.0
        return (max(r.token_s[-1] for r in self.requests)
                - min(r.request.arrival_s for r in self.requests))


def serve(policy: BatchingPolicy, source: ArrivalSource, price: Price, pp: int = 1,
          lanes: int | None = None) -> ServingTrace:
    """Serve every request of ``source`` on ``pp`` pipeline ranks with ``lanes`` lanes
    (default pp) under ``policy``, the clock given by ``price`` (module docstring)."""
    check_int("serve: pp", pp)
    lanes = check_int("serve: lanes", pp if lanes is None else lanes)
    sched = policy.scheduler(lanes)
    rank_free, lane_ready = [0.0] * pp, [0.0] * lanes
    clock, parked = 0.0, set()
    pending: list[tuple[float, int, Iteration]] = []  # (token time, start order, iteration)
    done: list[TimedIteration] = []
    tokens: dict[int, list[float]] = {}
    arrived: dict[int, Request] = {}

    def events(t: float) -> bool:
        changed = False
        while pending and pending[0][0] <= t:
            at, _, it = heapq.heappop(pending)
            for rid in sched.complete(it):  # a seat and blocks are free: lanes may go on
                source.finished(rid, at)
                changed = True
        for r in source.take(t):
            if r.id in arrived:
                raise ValueError(f"serve: request id {r.id} arrives twice")
            sched.add(r)
            arrived[r.id] = r
            changed = True
        return changed

    while True:
        t, g = min(((max(rank_free[0], lane_ready[j], clock), j) for j in range(lanes)
                    if j not in parked), default=(math.inf, -1))
        if parked:  # a waiting lane moves at the next arrival or completion, if sooner
            due = min(source.next_time(), pending[0][0] if pending else math.inf)
            if due < t:
                clock = max(clock, due)
                if events(clock):
                    parked.clear()
                continue
        if math.isinf(t):
            break
        clock = t
        if events(t):
            parked.clear()
        it = sched.form(g)
        if it is None:
            parked.add(g)
            continue
        cost = price(it)
        if len(cost.stages_s) != pp:
            raise ValueError(f"serve: price gave {len(cost.stages_s)} stage times for "
                             f"pp={pp}")
        end = t + cost.stages_s[0]
        rank_free[0] = end
        for r in range(1, pp):
            end = max(rank_free[r], end + cost.hop_s) + cost.stages_s[r]
            rank_free[r] = end
        lane_ready[g] = end + (cost.hop_s if cost.handback_s is None else cost.handback_s)
        heapq.heappush(pending, (end, len(done), it))
        done.append(TimedIteration(it, t, end))
        for s in it.segments:
            if s.emits >= 0:
                tokens.setdefault(s.request, []).append(end)
    if not sched.idle:
        raise RuntimeError(f"serve: {len(sched.waiting)} requests could not be scheduled")
    records = tuple(RequestRecord(arrived[i], sched.lane_of[i], tuple(tokens[i]),
                                  i in sched.blocked) for i in sorted(arrived))
    return ServingTrace(tuple(done), records,
                        {i: tuple(b) for i, b in sched.tables.items()}, lanes, sched.peak_batch)
