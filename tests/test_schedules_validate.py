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
    s = add_communication(sched("0F0 0F1 0B0 0B1", "1F1 1B1 1F0 1B0"))
    error = reject(s, "matched, in order")
    assert len(error.marks) == 2


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
