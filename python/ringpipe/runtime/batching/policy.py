"""The iteration-level scheduler of continuous batching: what runs in the next iteration.

Orca (Yu et al., OSDI'22) schedules at the granularity of one model iteration: a request
joins the running batch at any iteration and leaves the moment its last token exists.
vLLM (Kwon et al., SOSP'23) keeps the KV cache in fixed-size blocks with a block table
per request; Sarathi-Serve (Agrawal et al., OSDI'24) splits prompts into chunks so that
an iteration holds the running decodes plus prefill up to a token budget. One
:class:`BatchingPolicy` (frozen knobs) makes a :class:`Scheduler` (the mutable state of
one run), and each call of :meth:`Scheduler.form` builds one :class:`Iteration`:

1. every running request of the lane that has finished its prompt decodes one token;
2. requests still prefilling continue, ``min(remaining prompt, remaining budget)``
   positions each (the whole remaining prompt without chunking);
3. waiting requests are admitted first come, first served while the lane runs fewer than
   ``max_batch`` requests, budget is left and the KV blocks allow it.

**KV blocks.** A request of L prompt and K output tokens holds at most L + K - 1 positions
(the last token is never fed back): ``ceil((L + K - 1) / block_size)`` blocks. Blocks are
taken from the :class:`~ringpipe.model.kv_cache.BlockPool` as positions are written, but a
request is admitted only when the free blocks, less those promised to running requests,
cover its whole need, so a running request never waits for a block and nothing is
preempted (TensorRT-LLM's ``GUARANTEED_NO_EVICT`` capacity policy); otherwise it waits in
the queue, and so does everyone behind it. A request that could never fit is refused.

**Lanes.** With p pipeline ranks, p iterations are in flight at once, one per *lane* (vLLM's
virtual engines for pipeline parallelism): a request is admitted into the lane that forms
the iteration and stays there, so its next iteration starts after its last one's tokens
are back. With one lane this is the plain loop.

Nothing here depends on token values (output lengths are given, as benchmarks fix them),
so the same decisions drive the executed runtime and the priced simulator.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from ringpipe.model.kv_cache import BlockPool
from ringpipe.validation import check_int, check_real

__all__ = ["BatchingPolicy", "Iteration", "Request", "Scheduler", "Segment"]


@dataclass(frozen=True)
class Request:
    """A request: ``prompt_len`` prompt tokens, ``output_len`` tokens to generate, sent
    at ``arrival_s`` seconds. ``prefilled``: its prompt's KV cache and first token were
    made elsewhere (a disaggregated prefill pool) and arrive with it, so it only decodes
    tokens 1 .. K-1."""

    id: int
    arrival_s: float
    prompt_len: int
    output_len: int
    prefilled: bool = False

    def __post_init__(self) -> None:
        check_int("Request.id", self.id, 0)
        check_real(f"request {self.id}: arrival_s", self.arrival_s, 0.0)
        check_int(f"request {self.id}: prompt_len", self.prompt_len)
        check_int(f"request {self.id}: output_len", self.output_len, 2 if self.prefilled else 1)
        if not isinstance(self.prefilled, bool):
            raise TypeError(f"request {self.id}: prefilled must be a bool")

    @property
    def positions(self) -> int:
        """KV positions it holds at most: L + K - 1."""
        return self.prompt_len + self.output_len - 1


class Segment(NamedTuple):
    """One request's share of an iteration: positions ``start .. start+tokens-1``; the
    last one emits token ``emits`` (-1: a prompt chunk that does not end the prompt);
    ``decode``: one position after the prompt, else a prompt chunk."""

    request: int
    start: int
    tokens: int
    emits: int
    decode: bool


@dataclass(frozen=True)
class Iteration:
    """The work of one iteration of ``lane``: its segments, decodes first, and the
    requests whose last token it emits (they leave when it completes)."""

    lane: int
    segments: tuple[Segment, ...]
    finishing: tuple[int, ...] = ()

    @property
    def tokens(self) -> int:
        """Positions computed: N = Σ tokens."""
        return sum(s.tokens for s in self.segments)

    @property
    def emitted(self) -> tuple[Segment, ...]:
        """The segments that emit a token, in order."""
        return tuple(s for s in self.segments if s.emits >= 0)


@dataclass(frozen=True)
class BatchingPolicy:
    """The scheduler's knobs (vLLM's names in brackets): ``num_blocks`` KV blocks of
    ``block_size`` positions [``block_size``, 16], at most ``max_batch`` running requests
    per lane [``max_num_seqs``, 256], at most ``token_budget`` positions per iteration
    [``max_num_batched_tokens``], prompts split into chunks when ``chunked_prefill``."""

    num_blocks: int
    block_size: int = 16
    max_batch: int = 256
    token_budget: int = 8192
    chunked_prefill: bool = True

    def __post_init__(self) -> None:
        check_int("BatchingPolicy.num_blocks", self.num_blocks)
        check_int("BatchingPolicy.block_size", self.block_size)
        check_int("BatchingPolicy.max_batch", self.max_batch)
        check_int("BatchingPolicy.token_budget", self.token_budget, self.max_batch)
        if not isinstance(self.chunked_prefill, bool):
            raise TypeError("BatchingPolicy.chunked_prefill must be a bool")

    def blocks_for(self, request: Request) -> int:
        """Blocks ``request`` holds at most: ceil((L + K - 1) / block_size)."""
        return math.ceil(request.positions / self.block_size)

    def check(self, request: Request) -> None:
        """ValueError naming the request if it could never be admitted."""
        if self.blocks_for(request) > self.num_blocks:
            raise ValueError(f"request {request.id}: {request.positions} KV positions need "
                             f"{self.blocks_for(request)} blocks of {self.block_size}, the "
                             f"pool has {self.num_blocks}")
        if not (self.chunked_prefill or request.prefilled) and \
                request.prompt_len > self.token_budget:
            raise ValueError(f"request {request.id}: a {request.prompt_len}-token prompt "
                             f"exceeds token_budget={self.token_budget} without chunked "
                             "prefill")

    def scheduler(self, lanes: int = 1) -> Scheduler:
        """A fresh scheduler (empty queue, all blocks free) with ``lanes`` lanes."""
        return Scheduler(self, lanes)


@dataclass
class _Running:
    request: Request
    computed: int = 0  # positions whose KV is written (or being written)
    generated: int = 0  # tokens emitted
    blocks: list[int] = field(default_factory=list)


class Scheduler:
    """One run's queue, running requests per lane and block pool (module docstring)."""

    def __init__(self, policy: BatchingPolicy, lanes: int = 1) -> None:
        self.policy = policy
        self.pool = BlockPool(policy.num_blocks, policy.block_size)
        self.waiting: deque[Request] = deque()
        self.running: list[list[_Running]] = [[] for _ in range(check_int("lanes", lanes))]
        self.promised = 0  # blocks promised to running requests, not yet taken
        self.tables: dict[int, list[int]] = {}  # request id -> its block table
        self.lane_of: dict[int, int] = {}
        self._finishing: list[int] = []
        self.blocked: set[int] = set()  # requests that waited for KV blocks
        self.peak_batch = 0

    @property
    def idle(self) -> bool:
        """Nothing waiting and nothing running."""
        return not self.waiting and not any(self.running)

    def add(self, request: Request) -> None:
        """Queue ``request`` (ValueError if it could never be admitted)."""
        self.policy.check(request)
        self.waiting.append(request)

    def _grow(self, seq: _Running, positions: int) -> None:
        size = self.policy.block_size
        if positions > len(seq.blocks) * size:  # the hot path: no new block
            more = -(-positions // size) - len(seq.blocks)
            seq.blocks.extend(self.pool.allocate(more))
            self.promised -= more

    def _segment(self, seq: _Running, n: int) -> Segment:
        start, request = seq.computed, seq.request
        if start + n > len(seq.blocks) * self.policy.block_size:
            self._grow(seq, start + n)
        seq.computed = start + n
        emits = -1
        if seq.computed >= request.prompt_len:
            emits = seq.generated
            seq.generated = emits + 1
            if seq.generated == request.output_len:
                self._finishing.append(request.id)
        return Segment(request.id, start, n, emits, start >= request.prompt_len)

    def form(self, lane: int) -> Iteration | None:
        """The next iteration of ``lane`` (module docstring), or None when it has nothing
        to run. Updates the state as if the iteration ran."""
        pol, seqs = self.policy, self.running[lane]
        self._finishing: list[int] = []
        segments = [self._segment(s, 1) for s in seqs if s.computed >= s.request.prompt_len]
        budget = pol.token_budget - len(segments)
        for s in seqs:
            left = s.request.prompt_len - s.computed
            if 0 < left and budget > 0:
                segments.append(self._segment(s, min(left, budget)))
                budget -= segments[-1].tokens
        while self.waiting and len(seqs) < pol.max_batch and budget > 0:
            request = self.waiting[0]
            need = pol.blocks_for(request)
            if self.pool.num_free - self.promised < need:
                self.blocked.add(request.id)
                break
            if request.prompt_len > budget and not pol.chunked_prefill:
                break
            self.waiting.popleft()
            seq = _Running(request)
            seqs.append(seq)
            self.promised += need
            self.tables[request.id] = seq.blocks
            self.lane_of[request.id] = lane
            if request.prefilled:  # its prompt's KV arrived: it decodes at once
                self._grow(seq, request.prompt_len)
                seq.computed, seq.generated = request.prompt_len, 1
            segments.append(self._segment(seq, 1 if request.prefilled
                                          else min(request.prompt_len, budget)))
            budget -= segments[-1].tokens
        self.peak_batch = max(self.peak_batch, len(seqs))
        return Iteration(lane, tuple(segments), tuple(self._finishing)) if segments else None

    def complete(self, iteration: Iteration) -> list[int]:
        """``iteration``'s tokens are out: the requests it finished leave their lane and
        free their blocks; returns their ids."""
        if not iteration.finishing:
            return []
        seqs = self.running[iteration.lane]
        leaving = set(iteration.finishing)
        done = [s for s in seqs if s.request.id in leaving]
        for s in done:
            seqs.remove(s)
            self.pool.free(s.blocks)
            self.promised -= self.policy.blocks_for(s.request) - len(s.blocks)
        return [s.request.id for s in done]
