"""The validator: broken schedules are rejected, and the error carries the grid."""

import pytest

from ringpipe.schedules import (
    Action,
    ActionKind,
    Schedule,
    ScheduleError,
    add_communication,
    check_complete,
    dry_run,
    generate,
    one_chunk_placement,
    validate,
)


def sched(*rows, m=None, placement=None):
    parsed = tuple(
        tuple(None if c == "." else Action.parse(c) for c in row.split()) for row in rows
    )
    if m is None:
        m = 1 + max(a.microbatch for row in parsed for a in row if a is not None)
    return Schedule("test", placement or one_chunk_placement(len(rows)), parsed, m)


def reject(schedule, match):
    with pytest.raises(ScheduleError, match=match) as info:
        validate(schedule)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.grid in str(error)
    assert "rank 0 |" in error.grid
    return error


def test_valid_schedule_passes_and_order_respects_dependencies():
    s = generate("1f1b", 3, 4)
    order = dry_run(s)
    assert sorted(order) == sorted(
        (r, i) for r, row in enumerate(s.actions) for i in range(len(row))
    )
    seen = set()
    for r, i in order:
        a = s.actions[r][i]
        if a.kind is ActionKind.FORWARD and a.stage:
            assert (a.stage - 1, "F", a.microbatch) in seen
        if a.kind is ActionKind.FULL_BACKWARD and a.stage < 2:
            assert (a.stage + 1, "B", a.microbatch) in seen
        seen.add((a.stage, a.kind.value, a.microbatch))


def test_deadlock_is_detected_and_blocked_steps_marked():
    s = sched("0F0 0B0 0F1 0B1", "1F1 1B1 1F0 1B0")
    error = reject(s, "deadlock")
    assert set(error.marks) == {(0, 1), (1, 0)}
    assert "[0B0]" in error.grid and "[1F1]" in error.grid


def test_deadlock_with_comms_is_detected():
    # rank 0 receives its gradient before sending its activation: both wait forever
    s = sched("0RECV_B0 0F0 0SEND_F0 0B0", "1RECV_F0 1F0 1B0 1SEND_B0")
    error = reject(s, "deadlock: rank 0 at 0RECV_B0 waits for a message")
    assert error.marks == ((0, 0), (1, 0))


def test_missing_backward():
    error = reject(
        sched("0F0 0F1 0B0", "1F0 1B0 1F1 1B1"), "stage 0 micro-batch 1 has no complete backward"
    )
    assert error.marks == ((0, 1),)


def test_missing_forward():
    reject(sched("0F0 0B0", "1F0 1B0 1B1", m=2), "stage 0 micro-batch 1 never runs F")


def test_duplicate_action():
    error = reject(sched("0F0 0F0 0B0", "1F0 1B0"), "0F0 runs more than once")
    assert error.marks == ((0, 0), (0, 1))


def test_mixed_full_and_split_backward():
    reject(sched("0F0 0B0 0W0 0I0", "1F0 1B0"), "runs both B and I/W")


def test_w_before_i():
    reject(sched("0F0 0W0 0I0", "1F0 1I0 1W0"), r"0W0 runs before 0I0")


def test_backward_before_forward_on_same_rank():
    reject(sched("0B0 0F0", "1F0 1B0"), "0B0 runs before 0F0")


def test_action_on_wrong_rank():
    reject(sched("0F0 1B0", "1F0 0B0"), "runs on rank 0 but stage 1 is placed on rank 1")


def test_out_of_range_microbatch():
    s = sched("0F0 0B0 0F1", "1F0 1B0", m=1)
    reject(s, "out of range")


def test_compute_before_its_recv():
    good = add_communication(generate("1f1b", 2, 2))
    row1 = list(good.actions[1])
    i = row1.index(Action.parse("1RECV_F0"))
    row1[i], row1[i + 1] = row1[i + 1], row1[i]
    bad = Schedule("x", good.placement, (good.actions[0], tuple(row1)), 2)
    error = reject(bad, r"1F0 runs before 1RECV_F0")
    assert error.marks == ((1, i),)


def test_out_of_order_messages_are_mismatched():
    # rank 0 sends micro-batch 0 first; rank 1 receives micro-batch 1 first
    s = sched(
        "0F0 0SEND_F0 0F1 0SEND_F1 0RECV_B1 0B1 0RECV_B0 0B0",
        "1RECV_F1 1F1 1B1 1SEND_B1 1RECV_F0 1F0 1B0 1SEND_B0",
    )
    error = reject(s, "matched, in order")
    assert error.marks == ((0, 1), (1, 0))


# Rank 0 sends 0F1's output in a batch of its own, then computes 0F2 before it posts
# 0RECV_B0; rank 1 sends 1I0's gradient alone, then computes 1W0 before it posts
# 1RECV_F1. Each blocking send waits for a receive the peer posts only after its own
# send completes. Non-blocking sends would let both go on.
EXCHANGE = (
    "0F0 0SEND_F0 0F1 0SEND_F1 0F2 0SEND_F2 0RECV_B0 0B0 0RECV_B1 0B1 0RECV_B2 0B2",
    "1RECV_F0 1F0 1I0 1SEND_B0 1W0 1RECV_F1 1F1 1I1 1SEND_B1 1W1 1RECV_F2 1F2 1I2 1SEND_B2 1W2",
)


def test_blocking_sends_deadlock_that_isend_lets_through():
    s = sched(*EXCHANGE)
    validate(s, sends="isend")
    dry_run(s)  # isend by default
    error = reject(s, "deadlock with blocking sends")
    assert error.marks == ((0, 3), (1, 3))
    assert (
        "rank 0 blocks in batch [0SEND_F1]: 0SEND_F1 waits for 1RECV_F1 on rank 1" in error.reason
    )
    assert "[0SEND_F1]" in error.grid and "[1SEND_B0]" in error.grid
    with pytest.raises(ScheduleError, match="deadlock with blocking sends"):
        dry_run(s, sends="batched")


def test_one_batch_posts_its_send_and_receive_together():
    # the same program with 1W0 after 1RECV_F1: rank 1 posts [1SEND_B0 1RECV_F1] at once
    row1 = EXCHANGE[1].replace("1SEND_B0 1W0 1RECV_F1", "1SEND_B0 1RECV_F1 1W0")
    row1 = row1.replace("1SEND_B1 1W1 1RECV_F2", "1SEND_B1 1RECV_F2 1W1")
    s = sched(EXCHANGE[0], row1)
    order = validate(s).steps()
    assert dry_run(s, sends="batched") == order == dry_run(s)


def test_add_communication_lowers_the_exchange_without_deadlock():
    s = sched(*EXCHANGE).without_comms()
    lowered = add_communication(s)
    validate(lowered)
    # each receive goes where the unit clock says the tensor exists: 0F1 ends at
    # tick 2, when 1I0 starts, so 1RECV_F1 is posted before 1I0
    row1 = " ".join(map(str, lowered.actions[1]))
    assert row1.startswith("1RECV_F0 1F0 1RECV_F1 1I0 1SEND_B0 1RECV_F2 1W0 1F1")


def test_sends_mode_is_checked():
    s = generate("1f1b", 2, 2)
    with pytest.raises(ValueError, match="sends: unknown mode 'blocking'; known: isend, batched"):
        validate(s, sends="blocking")
    with pytest.raises(TypeError, match="sends: expected str"):
        dry_run(s, sends=1)
    with pytest.raises(TypeError, match="schedule: expected Schedule"):
        dry_run("0F0")


def test_send_never_received():
    good = add_communication(generate("gpipe", 2, 1))
    row1 = tuple(a for a in good.actions[1] if a.kind is not ActionKind.RECV_F)
    bad = Schedule("x", good.placement, (good.actions[0], row1), 1)
    reject(bad, "runs before 1RECV_F0")
    extra = (*good.actions[0], Action(0, ActionKind.SEND_F, 0))
    reject(Schedule("x", good.placement, (extra, good.actions[1]), 1), "never received")


def test_send_without_remote_peer():
    s = sched("0F0 0SEND_F0 0B0", m=1)
    reject(s, "no peer stage on another rank")


def test_long_schedule_grid_is_windowed():
    s = generate("1f1b", 2, 200)
    row0 = list(s.actions[0])
    assert (str(row0[299]), str(row0[302])) == ("0F150", "0B150")
    row0[299], row0[302] = row0[302], row0[299]
    bad = Schedule("x", s.placement, (tuple(row0), s.actions[1]), 200)
    error = reject(bad, "0B150 runs before 0F150")
    assert error.marks == ((0, 299),)
    assert "..." in error.grid and len(error.grid.splitlines()[1]) < 400


def test_check_complete_alone_and_type_errors():
    check_complete(generate("zb-h1", 3, 3))
    with pytest.raises(TypeError, match="schedule"):
        validate("0F0")
