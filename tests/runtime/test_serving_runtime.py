"""Continuous batching on TP × PP × DP ranks: every request's tokens are its own greedy
reference's, whatever else shares its batches."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig, init_params
from ringpipe.model.generate import generate
from ringpipe.plan.serving import ServingPlan
from ringpipe.runtime.batching import BatchingPolicy, Request, StagePrice
from ringpipe.runtime.run import run

CFG = ModelConfig(layers=4, hidden=16, heads=4, kv_heads=2, vocab=40)


def _traffic(n, seed, rate=1.0, max_prompt=9, max_out=7):
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    reqs = [Request(i, float(arrivals[i]), int(rng.integers(1, max_prompt)),
                    int(rng.integers(1, max_out))) for i in range(n)]
    return reqs, [rng.integers(0, CFG.vocab, r.prompt_len) for r in reqs]


def _price(pp):
    return lambda it: StagePrice(tuple([0.2 + 0.05 * it.tokens] * pp), 0.01 * (pp > 1))


def _check(plan, params, prompts, result):
    for r in plan.requests:
        ref = generate(CFG, params, prompts[r.id][None], r.output_len)
        assert np.array_equal(result.tokens[r.id], ref.tokens[0]), f"request {r.id}"
        scale = np.max(np.abs(ref.logits[0]))
        assert np.max(np.abs(result.logits[r.id] - ref.logits[0])) <= 1e-10 * scale


@pytest.mark.parametrize("dp,pp,tp", [(1, 1, 1), (1, 2, 2), (1, 4, 1), (2, 2, 1), (1, 1, 4)])
def test_random_arrivals_and_lengths_give_the_reference_tokens(dp, pp, tp):
    reqs, prompts = _traffic(14, seed=dp * 100 + pp * 10 + tp, rate=3.0)
    params = init_params(CFG, 1)
    policy = BatchingPolicy(num_blocks=8, block_size=2, max_batch=4, token_budget=6)
    plan = ServingPlan(CFG, Mesh(dp=dp, pp=pp, tp=tp), reqs, policy, _price(pp))
    result = run(plan, params, prompts, "numpy")
    _check(plan, params, prompts, result)
    iterations = [t.iteration for trace in plan.traces for t in trace.iterations]
    # the batches really were shared: a prompt chunk beside decodes, several requests
    assert any({s.decode for s in it.segments} == {True, False} for it in iterations)
    assert max(len(it.segments) for it in iterations) > 1
    assert any(r.waited_for_blocks for trace in plan.traces for r in trace.requests)
    layers_here = CFG.layers // pp
    kv_here = max(CFG.kv_heads // tp, 1)
    for c in result.counters:  # the paged pool: 2 · layers · blocks · kv · block · d · 8
        assert c.kv_cache_bytes == 2 * layers_here * 8 * kv_here * 2 * 4 * 8


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), rate=st.sampled_from([0.3, 3.0, 30.0]),
       blocks=st.integers(7, 12), budget=st.integers(4, 9), chunked=st.booleans())
def test_any_traffic_and_policy_give_the_reference_tokens(seed, rate, blocks, budget, chunked):
    # prompts of at most 8 and outputs of at most 6 tokens: 13 positions, 7 blocks of 2
    reqs, prompts = _traffic(8, seed, rate, max_prompt=budget if not chunked else 9)
    params = init_params(CFG, 2)
    policy = BatchingPolicy(num_blocks=blocks, block_size=2, max_batch=3,
                            token_budget=budget, chunked_prefill=chunked)
    plan = ServingPlan(CFG, Mesh(pp=2, tp=2), reqs, policy, _price(2))
    _check(plan, params, prompts, run(plan, params, prompts, "numpy"))


def test_the_executed_schedule_is_the_iteration_order():
    reqs, prompts = _traffic(6, seed=5, rate=0.5)
    plan = ServingPlan(CFG, Mesh(pp=2), reqs, BatchingPolicy(num_blocks=16, block_size=2),
                       _price(2))
    trace, schedule = plan.traces[0], plan.schedules[0]
    lanes = [t.iteration.lane for t in trace.iterations]
    forwards = [a.microbatch for a in schedule.actions[1] if a.kind.value == "F"]
    assert forwards[:len(lanes)] == lanes  # rank 1 runs them in start order


def test_prompts_are_checked_by_request_before_anything_runs():
    reqs, prompts = _traffic(3, seed=1)
    plan = ServingPlan(CFG, Mesh(), reqs, BatchingPolicy(num_blocks=16), _price(1))
    params = init_params(CFG, 0)
    bad = list(prompts)
    bad[1] = bad[1][:-1] if len(bad[1]) > 1 else np.zeros(3, dtype=np.int64)
    with pytest.raises(ValueError, match="request 1: prompt must be"):
        run(plan, params, bad, "numpy")
    with pytest.raises(ValueError, match="request ids must be 0 .. N-1"):
        ServingPlan(CFG, Mesh(), reqs[1:], BatchingPolicy(num_blocks=16), _price(1))
    with pytest.raises(ValueError, match="serving runs on the CPU"):
        run(plan, params, prompts, "cupy")
