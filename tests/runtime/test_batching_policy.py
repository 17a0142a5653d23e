"""The iteration-level scheduler and the serving loop: who runs when, on which blocks."""

from __future__ import annotations

import math

import pytest

from ringpipe.runtime.batching import (
    BatchingPolicy,
    ClosedLoop,
    OpenLoop,
    Request,
    StagePrice,
    serve,
)
from ringpipe.runtime.batching.engine import round_robin


def unit_price(pp=1, hop=0.0, per_token=0.0):
    return lambda it: StagePrice(tuple([1.0 + per_token * it.tokens] * pp), hop)


def test_decodes_first_then_chunks_then_admissions_under_the_budget():
    sched = BatchingPolicy(num_blocks=100, block_size=4, max_batch=8,
                           token_budget=10).scheduler()
    for i, (prompt, out) in enumerate([(6, 3), (12, 2), (3, 1)]):
        sched.add(Request(i, 0.0, prompt, out))
    first = sched.form(0)
    # request 0 whole (6), request 1 its first 4 positions: the budget is spent
    assert [(s.request, s.start, s.tokens, s.emits) for s in first.segments] == [
        (0, 0, 6, 0), (1, 0, 4, -1)]
    second = sched.form(0)
    # request 0 decodes first, request 1 continues (8 left, 9 budget), request 2 gets 1
    assert [(s.request, s.start, s.tokens, s.emits, s.decode) for s in second.segments] == [
        (0, 6, 1, 1, True), (1, 4, 8, 0, False), (2, 0, 1, -1, False)]
    assert sched.complete(first) == [] and sched.complete(second) == []
    third = sched.form(0)
    assert [(s.request, s.start, s.tokens, s.emits) for s in third.segments] == [
        (0, 7, 1, 2), (1, 12, 1, 1), (2, 1, 2, 0)]
    assert sorted(sched.complete(third)) == [0, 1, 2]  # each emitted its last token
    assert sched.idle and sched.pool.num_free == 100


def test_without_chunking_a_prompt_waits_for_a_budget_it_fits():
    sched = BatchingPolicy(num_blocks=100, max_batch=4, token_budget=8,
                           chunked_prefill=False).scheduler()
    sched.add(Request(0, 0.0, 6, 2))
    sched.add(Request(1, 0.0, 5, 2))
    assert [s.request for s in sched.form(0).segments] == [0]  # 6 + 5 > 8
    assert [(s.request, s.tokens) for s in sched.form(0).segments] == [(0, 1), (1, 5)]
    with pytest.raises(ValueError, match="request 7: a 9-token prompt exceeds"):
        sched.add(Request(7, 0.0, 9, 1))


def test_requests_wait_for_blocks_first_come_first_served_and_reuse_freed_blocks():
    # 4 blocks of 2: request 0 needs ceil((4+3-1)/2) = 3, request 1 needs 2, request 2 1
    sched = BatchingPolicy(num_blocks=4, block_size=2).scheduler()
    for i, (prompt, out) in enumerate([(4, 3), (2, 3), (1, 1)]):
        sched.add(Request(i, 0.0, prompt, out))
    firsts = []
    while not sched.idle:
        it = sched.form(0)
        firsts.append(sorted(s.request for s in it.segments if s.start == 0))
        sched.complete(it)
    # request 0 alone for its prefill and 2 decodes (1 still waits: 4 - 3 promised < 2,
    # and request 2, which would fit, does not overtake it); then 1 and 2 together
    assert firsts[:4] == [[0], [], [], [1, 2]]
    assert sched.blocked == {1}  # the head of the queue waited for blocks
    assert sched.tables[0] == [0, 1, 2] and set(sched.tables[1]) <= {0, 1, 2}  # reused
    assert sched.pool.num_free == 4 and sched.promised == 0
    with pytest.raises(ValueError, match="request 9: 9 KV positions need 5 blocks"):
        sched.add(Request(9, 0.0, 8, 2))


def test_one_request_at_a_time_costs_prefill_then_one_iteration_per_token():
    trace = serve(BatchingPolicy(num_blocks=64), OpenLoop([Request(0, 2.0, 5, 4)]),
                  unit_price(pp=3, hop=0.5), pp=3)
    (rec,) = trace.requests
    # prefill through 3 ranks with 2 hops; each next token 3 stages + 3 hops later
    assert rec.token_s == (2.0 + 3 + 1.0, 2.0 + 3 + 1.0 + 4.5, 2.0 + 3 + 1.0 + 9.0,
                           2.0 + 3 + 1.0 + 13.5)
    assert rec.ttft_s == 4.0 and rec.gaps_s == (4.5, 4.5, 4.5) and rec.e2e_s == 17.5
    assert rec.itl_s == 4.5


def test_lanes_keep_the_pipeline_full_and_rank_order_is_start_order():
    reqs = [Request(i, 0.0, 2, 6) for i in range(4)]
    one = serve(BatchingPolicy(num_blocks=64, max_batch=2), OpenLoop(reqs), unit_price(2), 2,
                lanes=1)
    two = serve(BatchingPolicy(num_blocks=64, max_batch=2), OpenLoop(reqs), unit_price(2), 2)
    assert two.lanes == 2 and {r.lane for r in two.requests} == {0, 1}
    assert two.makespan_s < one.makespan_s
    starts = [t.start_s for t in two.iterations]
    assert starts == sorted(starts)
    for rec in two.requests:  # a lane's next iteration starts after its tokens are back
        assert all(b - a >= 2.0 for a, b in zip(rec.token_s[:-1], rec.token_s[1:], strict=True))


def test_closed_loop_sends_the_next_request_when_the_last_one_ends():
    clients = [[Request(0, 99.0, 3, 2), Request(1, 99.0, 3, 2)], [Request(2, 99.0, 3, 2)]]
    trace = serve(BatchingPolicy(num_blocks=64), ClosedLoop(clients), unit_price())
    by_id = {r.request.id: r for r in trace.requests}
    assert by_id[0].request.arrival_s == 0.0 and by_id[2].request.arrival_s == 0.0
    assert by_id[1].request.arrival_s == by_id[0].token_s[-1]
    assert trace.makespan_s == by_id[1].token_s[-1]


def test_round_robin_routes_by_arrival_order():
    reqs = [Request(i, float(5 - i), 1, 1) for i in range(5)]
    assert [[r.id for r in rs] for rs in round_robin(reqs, 2)] == [[4, 2, 0], [3, 1]]


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="token_budget must be >= 256"):
        BatchingPolicy(num_blocks=4, token_budget=8)
    with pytest.raises(ValueError, match="request 3: prompt_len"):
        Request(3, 0.0, 0, 1)
    with pytest.raises(ValueError, match="arrives twice"):
        serve(BatchingPolicy(num_blocks=8), OpenLoop([Request(0, 0.0, 1, 1)] * 2),
              unit_price())
    with pytest.raises(ValueError, match="price gave 1 stage times for pp=2"):
        serve(BatchingPolicy(num_blocks=8), OpenLoop([Request(0, 0.0, 1, 1)]), unit_price(),
              pp=2)
    assert math.isinf(OpenLoop([]).next_time())
