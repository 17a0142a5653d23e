"""The simulator reproduces the closed-form bubbles and activation peaks exactly."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringpipe.schedules import (
    CostModel,
    add_communication,
    generate,
    gpipe,
    interleaved_one_f_one_b,
    one_f_one_b,
    simulate,
    validate,
    zb_h1,
    zb_v,
)

PM = [(p, m) for p in range(1, 13) for m in range(1, 25)]


def test_issue_example_p8_m32():
    result = simulate(one_f_one_b(8, 32))
    assert result.bubble_fraction == Fraction(7, 39)
    assert simulate(gpipe(8, 32)).bubble_fraction == Fraction(7, 39)


@pytest.mark.parametrize("generator", [gpipe, one_f_one_b])
def test_gpipe_and_1f1b_bubble_is_exact(generator):
    for p, m in PM:
        result = simulate(generator(p, m))
        assert result.bubble_fraction == Fraction(p - 1, m + p - 1), (p, m)
        assert result.makespan == 3 * (m + p - 1)


def test_bubble_formula_holds_for_any_uniform_f_and_b():
    costs = CostModel(forward=Fraction(2, 3), backward_input=Fraction(5, 7), backward_weight=1)
    for generator in (gpipe, one_f_one_b):
        result = simulate(generator(5, 11), costs)
        assert result.bubble_fraction == Fraction(4, 15)


def test_peak_activations():
    for p, m in PM:
        assert simulate(gpipe(p, m)).peak_activations == (m,) * p
        one = simulate(one_f_one_b(p, m))
        assert one.peak_activations == tuple(min(p - r, m) for r in range(p))
        assert one.peak_activations_per_stage == one.peak_activations


@pytest.mark.parametrize("v", [2, 3, 4])
def test_interleaved_bubble_is_exact_when_each_chunk_costs_1_over_v(v):
    chunk = Fraction(1, v)
    costs = CostModel(forward=chunk, backward_input=chunk, backward_weight=chunk)
    for p in range(1, 9):
        for m in range(p, 25, p):
            result = simulate(interleaved_one_f_one_b(p, m, v), costs)
            assert result.bubble_fraction == Fraction(p - 1, v * m + p - 1), (p, m, v)


def test_zb_h1_idle_time_is_a_third_of_1f1b():
    for p, m in PM:
        zb, one = simulate(zb_h1(p, m)), simulate(one_f_one_b(p, m))
        assert zb.peak_activations == one.peak_activations  # no more memory than 1F1B
        assert zb.makespan <= one.makespan
        if m >= p:
            assert zb.idle == (p - 1,) * p  # (p-1)(F+I-W) with F = I = W = 1
            assert all(3 * a == b for a, b in zip(zb.idle, one.idle, strict=True))
            assert zb.makespan == 3 * m + p - 1
            assert zb.bubble_fraction == Fraction(p - 1, 3 * m + p - 1)
            assert zb.peak_pending_weight_passes == tuple(r + 1 for r in range(p))


HALF = Fraction(1, 2)
CHUNK_COSTS = CostModel(forward=HALF, backward_input=HALF, backward_weight=HALF)


def test_zb_v_bubble_is_the_v_placement_minimum():
    """(p-1)/(6m+p-1) with F = I = W = 1/2 per chunk once m >= floor(3p/2); never above ZB-H1."""
    reached = 0
    for p in range(1, 17):
        for m in range(1, 49):
            zb = simulate(zb_v(p, m), CHUNK_COSTS)
            # lower bound for any V: rank p-1 starts after p-1 chunk forwards
            assert zb.makespan >= 3 * m + HALF * (p - 1)
            assert zb.bubble_fraction <= simulate(zb_h1(p, m)).bubble_fraction, (p, m)
            if m >= 3 * p // 2:
                assert zb.bubble_fraction == Fraction(p - 1, 6 * m + p - 1), (p, m)
                assert zb.idle == (HALF * (p - 1),) * p
                reached += 1
    assert reached == sum(49 - 3 * p // 2 for p in range(1, 17))
    assert simulate(zb_v(8, 16), CHUNK_COSTS).bubble_fraction == Fraction(7, 103)  # ~6.8%


def test_zb_v_peak_activations_within_1f1b_peak():
    """In chunk units (half a stage): <= 2 min(p, m), twice 1F1B's rank-0 peak in stages."""
    for p in range(1, 17):
        for m in range(1, 49, 3):
            zb = simulate(zb_v(p, m), CHUNK_COSTS)
            one = simulate(one_f_one_b(p, m))
            assert max(zb.peak_activations) <= 2 * max(one.peak_activations), (p, m)
            if m >= 2 * p - 1:
                assert zb.peak_activations == (2 * p,) * p
            if m >= 2 * p:  # stage s holds 2p - s, like stage s of a 2p-stage 1F1B
                assert zb.peak_activations_per_stage == tuple(range(2 * p, 0, -1))


def test_comm_actions_do_not_change_timing():
    costs = CostModel(
        forward=2,
        backward_input=3,
        backward_weight=1,
        p2p_latency=1,
        p2p_bandwidth=4,
        message_bytes=2,
    )
    for name, v in [
        ("1f1b", None),
        ("gpipe", None),
        ("zb-h1", None),
        ("zb-v", None),
        ("interleaved-1f1b", 2),
    ]:
        s = generate(name, 4, 8, v)
        plain, lowered = simulate(s, costs), simulate(add_communication(s), costs)
        assert plain.makespan == lowered.makespan
        assert plain.busy == lowered.busy


def test_latency_lengthens_the_pipeline():
    costs = CostModel(p2p_latency=Fraction(1, 2))
    result = simulate(one_f_one_b(4, 8), costs)
    # fill and drain each cross 3 boundaries in each direction, per micro-batch chain
    assert result.makespan > 33
    assert costs.message_time == Fraction(1, 2)
    assert CostModel(p2p_latency=1, p2p_bandwidth=4, message_bytes=2).message_time == Fraction(3, 2)


def test_per_stage_costs_and_floats():
    result = simulate(one_f_one_b(3, 6), CostModel(forward=[1.0, 2.0, 1.0]))
    # the slowest stage sets the pace: 6 * (2 + 2) on rank 1, 6 * (1 + 2) elsewhere
    assert result.busy == pytest.approx((18.0, 24.0, 18.0))
    # rank 1 cannot start before rank 0's first forward nor end before it gets the last
    # backward through, and rank 0 still owes that micro-batch's backward
    assert result.makespan >= 1 + 24 + 2
    assert result.bubble_fraction == pytest.approx(1 - sum(result.busy)
                                                   / (3 * result.makespan))
    with pytest.raises(ValueError, match="forward: got 2 per-stage costs for 3 stages"):
        simulate(one_f_one_b(3, 6), CostModel(forward=[1, 2]))


def test_timelines_are_consistent():
    result = simulate(zb_h1(4, 8))
    for rank, line in enumerate(result.timelines):
        assert [t.action for t in line] == list(result.schedule.actions[rank])
        assert all(t.start < t.end for t in line)
        assert all(a.end <= b.start for a, b in zip(line, line[1:], strict=False))
        assert sum(t.end - t.start for t in line) == result.busy[rank]
    assert max(line[-1].end for line in result.timelines) == result.makespan


def test_execution_order_reuse_and_checks():
    s = one_f_one_b(3, 3)
    assert simulate(s, execution_order=validate(s)) == simulate(s)
    with pytest.raises(ValueError, match="different schedule"):
        simulate(one_f_one_b(3, 4), execution_order=validate(s))
    with pytest.raises(TypeError, match="costs"):
        simulate(s, costs=1)


@pytest.mark.parametrize(
    "bad", [{"forward": -1}, {"p2p_latency": -1}, {"p2p_bandwidth": 0}, {"forward": []}]
)
def test_cost_model_rejects_bad_values(bad):
    with pytest.raises((ValueError, TypeError)):
        CostModel(**bad)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["gpipe", "1f1b", "zb-h1", "zb-v"]),
    st.integers(1, 8),
    st.integers(1, 16),
    st.fractions(Fraction(1, 4), 4),
    st.fractions(Fraction(1, 4), 4),
    st.fractions(Fraction(1, 4), 4),
    st.fractions(0, 2),
)
def test_simulation_invariants(name, p, m, f, i, w, latency):
    costs = CostModel(forward=f, backward_input=i, backward_weight=w, p2p_latency=latency)
    schedule = generate(name, p, m)
    result = simulate(schedule, costs)
    per_rank = schedule.chunks_per_rank * m * (f + i + w)
    assert result.busy == (per_rank,) * p
    assert result.makespan >= per_rank + (p - 1) * (f + latency)  # last rank starts late
    assert result.bubble_fraction == (p * result.makespan - p * per_rank) / (p * result.makespan)


def test_exact_even_when_scaled_costs_would_overflow_int64():
    tiny = Fraction(1, 2**61 - 1)  # a prime denominator: the common scale is huge
    result = simulate(one_f_one_b(3, 4), CostModel(forward=1, backward_input=tiny))
    assert result.makespan == (4 + 3 - 1) * (1 + tiny + 1)  # (m+p-1)(F+B), B = I + W
    assert result.bubble_fraction == Fraction(3 - 1, 4 + 3 - 1)
