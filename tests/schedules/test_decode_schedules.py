"""Forward-only inference schedules: validation, the token hand-back, and token timing."""

import json

import pytest

from ringpipe.cli import main
from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig
from ringpipe.plan.training import Plan
from ringpipe.schedules import (
    Action,
    Schedule,
    ScheduleError,
    add_communication,
    generate,
    simulate,
    validate,
)
from ringpipe.schedules.generators.decode import decode, inference_timing, prefill, token_step


@pytest.mark.parametrize("p", [1, 2, 3, 5])
@pytest.mark.parametrize("steps", [1, 2, 4])
def test_every_decode_schedule_validates_with_blocking_sends(p, steps):
    for groups in range(1, p + 2):
        lowered = add_communication(decode(p, groups, steps))
        validate(lowered, "batched")
        assert lowered.num_stages == p * steps and lowered.chunks_per_rank == steps


def test_token_hand_back_is_an_ordinary_stage_boundary_message():
    s = add_communication(decode(2, 2, 2))
    rank0 = [str(a) for a in s.actions[0] if a is not None]
    rank1 = [str(a) for a in s.actions[1] if a is not None]
    # stage 1 (rank 1, step 0) hands its tokens to stage 2 (rank 0, step 1)
    assert "1SEND_F0" in rank1 and "2RECV_F0" in rank0
    assert rank0.index("2RECV_F0") < rank0.index("2F0")
    assert token_step(3, 2) == (1, 1)


def test_registry_and_prefill_equal_one_step_decode():
    assert generate("prefill", 3, 2).actions == decode(3, 2, 1).actions
    assert generate("decode", 3, 2, 4).actions == decode(3, 2, 4).actions
    assert prefill(2, 2).name == "prefill" and decode(2, 2, 3).name == "decode"
    with pytest.raises(ValueError, match="unknown schedule 'decode'"):
        Plan(ModelConfig(vocab=5), Mesh(pp=2), schedule="decode")  # not a training schedule


def test_forward_only_completeness_is_still_checked():
    s = decode(2, 2, 1)
    missing = Schedule("x", s.placement, (s.actions[0], s.actions[1][:1]), 2)
    with pytest.raises(ScheduleError, match="stage 1 micro-batch 1 never runs F"):
        validate(missing)
    mixed = Schedule("x", s.placement, (s.actions[0] + (Action.parse("0B0"),),
                                        s.actions[1]), 2)
    with pytest.raises(ScheduleError, match="has no complete backward"):
        validate(mixed)


@pytest.mark.parametrize("p", [1, 2, 4])
def test_timing_with_uniform_costs(p):
    # G = p groups keep every rank busy: a token every p decode costs per group,
    # p tokens per p costs overall; one group alone gets the same latency at 1/p the rate
    full = inference_timing(decode(p, p, 5), prefill_cost=3, decode_cost=2)
    assert full.token_times[:, 0].tolist() == [3 * (p + g) for g in range(p)]
    assert full.ttft == 3 * (2 * p - 1)
    assert (full.token_latency[:, 2:] == 2 * p).all()  # after the prefill -> decode turn
    assert full.tpot >= 2 * p
    assert full.steady_rate == pytest.approx(1 / 2)
    one = inference_timing(decode(p, 1, 5), 3, 2)
    assert one.ttft == 3 * p and one.tpot == 2 * p
    assert one.steady_rate == pytest.approx(1 / (2 * p))
    assert one.token_latency[0].tolist() == [3 * p] + [2 * p] * 4


def test_timing_counts_the_hand_back_latency_and_checks_arguments():
    t = inference_timing(decode(2, 1, 3), 1, 1, p2p_latency=0.5)
    assert t.tpot == pytest.approx(2 + 2 * 0.5)  # two hops per token: 1 -> 0, 0 -> 1
    with pytest.raises(ValueError, match="not forward-only"):
        inference_timing(generate("1f1b", 2, 2), 1, 1)
    with pytest.raises(ValueError, match="decode_cost: got 3 per-rank costs for 2"):
        inference_timing(decode(2, 1, 2), 1, [1, 1, 1])
    assert simulate(decode(3, 3, 2)).makespan == 8


def test_cli_draws_inference_schedules(capsys):
    assert main(["schedule", "decode", "-p", "2", "-m", "2", "-v", "3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schedule"] == "decode" and data["chunks"] == 3
    assert data["actions"]["0"][:3] == ["0F0", "0F1", "2F0"]
    assert main(["schedule", "prefill", "-p", "2", "-m", "2"]) == 0


def test_continuous_is_decode_when_lanes_take_turns_and_pads_short_lanes():
    from ringpipe.schedules import add_communication, validate
    from ringpipe.schedules.generators.decode import continuous, decode

    assert continuous(3, [0, 1, 2] * 4).actions == decode(3, 3, 4).actions
    uneven = continuous(2, [0, 0, 1, 0], num_lanes=3)
    assert uneven.num_microbatches == 3 and uneven.chunks_per_rank == 3
    # lane 1 padded with 2 steps, lane 2 with 3, after the real iterations
    assert [str(a) for a in uneven.actions[0]] == ["0F0", "2F0", "0F1", "4F0", "0F2",
                                                    "2F1", "2F2", "4F1", "4F2"]
    validate(add_communication(uneven))
