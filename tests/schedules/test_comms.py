"""The communication pass: messages placed on the unit clock, and what that guarantees."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringpipe.schedules import (
    ActionKind,
    CostModel,
    Schedule,
    ScheduleError,
    add_communication,
    execution_order,
    generate,
    simulate,
    validate,
)
from ringpipe.schedules.comms import unit_clock

K = ActionKind
SENDS = {K.SEND_F: (K.FORWARD,), K.SEND_B: (K.FULL_BACKWARD, K.BACKWARD_INPUT)}
RECVS = {K.RECV_F: (K.FORWARD,), K.RECV_B: (K.FULL_BACKWARD, K.BACKWARD_INPUT)}


@st.composite
def schedules(draw):
    name = draw(st.sampled_from(["gpipe", "1f1b", "zb-h1", "zb-v", "interleaved-1f1b"]))
    p = draw(st.integers(1, 8))
    if name == "interleaved-1f1b":
        return generate(name, p, p * draw(st.integers(1, 3)), draw(st.integers(2, 4)))
    return generate(name, p, draw(st.integers(1, 16)))


def _compute_index(row):
    """(stage, kind, mb) -> position, for the compute actions of one row."""
    return {(a.stage, a.kind, a.microbatch): i for i, a in enumerate(row) if a.kind.is_compute}


@settings(max_examples=60, deadline=None)
@given(schedules())
def test_messages_sit_on_the_unit_clock(schedule):
    lowered = add_communication(schedule)
    assert lowered.without_comms() == schedule  # the compute order is untouched
    validate(lowered)  # batched blocking sends
    start, end = unit_clock(execution_order(schedule))
    row_start = [0]
    for row in schedule.actions:
        row_start.append(row_start[-1] + len(row))
    for rank, row in enumerate(lowered.actions):
        computes = _compute_index(row)
        ticks = {}  # position in the lowered row -> (start, end) tick
        for (stage, kind, mb), i in computes.items():
            j = row_start[rank] + _compute_index(schedule.actions[rank])[stage, kind, mb]
            ticks[i] = (int(start[j]), int(end[j]))
        for i, a in enumerate(row):
            if a.kind in SENDS:
                # only communication between the producer and its SEND
                producer = max(k for k in ticks if k < i)
                assert row[producer].stage == a.stage and row[producer].microbatch == a.microbatch
                assert row[producer].kind in SENDS[a.kind]
            elif a.kind in RECVS:
                consumer = next(computes[a.stage, k, a.microbatch] for k in RECVS[a.kind]
                                if (a.stage, k, a.microbatch) in computes)  # fmt: skip
                assert consumer > i
                # the gap holding the RECV covers the tick the tensor was produced at
                nxt = min(k for k in ticks if k > i)
                prev = max((k for k in ticks if k < i), default=None)
                tick = _production_tick(schedule, start, end, row_start, a)
                assert ticks[nxt][0] >= tick
                assert prev is None or ticks[prev][1] <= tick


def _production_tick(schedule, start, end, row_start, recv):
    stage = recv.stage - 1 if recv.kind is K.RECV_F else recv.stage + 1
    rank = schedule.placement[stage]
    kinds = RECVS[recv.kind]
    for i, a in enumerate(schedule.actions[rank]):
        if a.stage == stage and a.kind in kinds and a.microbatch == recv.microbatch:
            return int(end[row_start[rank] + i])
    raise AssertionError(f"no producer for {recv}")


@settings(max_examples=40, deadline=None)
@given(
    schedules(),
    st.fractions(Fraction(1, 4), 3),
    st.fractions(Fraction(1, 4), 3),
    st.fractions(Fraction(1, 4), 3),
    st.fractions(0, 2),
)
def test_lowering_never_changes_simulated_time(schedule, f, i, w, latency):
    costs = CostModel(forward=f, backward_input=i, backward_weight=w, p2p_latency=latency)
    plain, lowered = simulate(schedule, costs), simulate(add_communication(schedule), costs)
    assert lowered.makespan == plain.makespan
    assert lowered.busy == plain.busy
    assert lowered.peak_activations == plain.peak_activations


def test_v_shape_channel_carries_two_streams_in_the_same_order_at_both_ends():
    lowered = add_communication(generate("zb-v", 3, 6))
    place = lowered.placement

    def peer(a):
        return place[a.stage + 1 if a.kind in (K.SEND_F, K.RECV_B) else a.stage - 1]

    sent = [a for a in lowered.actions[0] if a.kind in SENDS and peer(a) == 1]
    received = [a for a in lowered.actions[1] if a.kind in RECVS and peer(a) == 0]
    assert {a.kind for a in sent} == {K.SEND_F, K.SEND_B}  # stage 0 -> 1 and stage 5 -> 4
    assert [(a.kind is K.SEND_F, a.microbatch) for a in sent] == [
        (a.kind is K.RECV_F, a.microbatch) for a in received
    ]


def test_idle_slots_stay_where_they_were():
    base = generate("zb-h1", 3, 4)
    rows = tuple((None, *row[:3], None, *row[3:]) for row in base.actions)
    schedule = Schedule("zb-h1", base.placement, rows, 4)
    lowered = add_communication(schedule)
    for before, after in zip(rows, lowered.actions, strict=True):
        assert [a for a in after if a is None or a.kind.is_compute] == list(before)
    validate(lowered)


def test_errors():
    lowered = add_communication(generate("1f1b", 2, 2))
    with pytest.raises(ValueError, match="schedule: already has SEND/RECV"):
        add_communication(lowered)
    with pytest.raises(TypeError, match="schedule: expected Schedule"):
        add_communication("0F0")
    b = ActionKind.FULL_BACKWARD
    f = ActionKind.FORWARD
    stuck = Schedule(
        "x",
        (0, 1),
        (
            tuple(generate("1f1b", 2, 2).actions[0]),
            tuple(a for a in reversed(generate("1f1b", 2, 2).actions[1]) if a.kind in (f, b)),
        ),
        2,
    )
    with pytest.raises(ScheduleError, match="runs before"):
        add_communication(stuck)
