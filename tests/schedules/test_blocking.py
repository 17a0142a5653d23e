"""The batched blocking-send dry run against a plain fixpoint model of the same rules."""

from collections import defaultdict

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from ringpipe.schedules import (
    Action,
    ActionKind,
    Schedule,
    ScheduleError,
    add_communication,
    generate,
    validate,
)

K = ActionKind
SENDS = (K.SEND_F, K.SEND_B)


def reference_stuck_ranks(schedule):
    """The ranks left waiting, by iterating the rules of validate.py to a fixpoint.

    A rank posts the batch it has reached; it moves past the batch once every
    operation's partner (the same-numbered operation on the channel) is posted.
    Posting only ever grows, so repeating until nothing changes is exact.
    """
    place = schedule.placement
    batches = []  # per rank: list of batches, each a list of actions
    for row in schedule.actions:
        rank_batches, current = [], None
        for a in row:
            if a is None:
                continue
            if a.kind.is_compute:
                current = None
                continue
            if current is None:
                current = []
                rank_batches.append(current)
            current.append(a)
        batches.append(rank_batches)
    ends = defaultdict(lambda: ([], []))  # channel (src, dst) -> (send batches, recv batches)
    for r, rank_batches in enumerate(batches):
        for b, batch in enumerate(rank_batches):
            for a in batch:
                peer = place[a.stage + 1 if a.kind in (K.SEND_F, K.RECV_B) else a.stage - 1]
                if a.kind in SENDS:
                    ends[r, peer][0].append((r, b))
                else:
                    ends[peer, r][1].append((r, b))
    needs = defaultdict(list)  # batch -> the batches holding its operations' partners
    for sent, received in ends.values():
        assert len(sent) == len(received)  # the isend run checked this
        for x, y in zip(sent, received, strict=True):
            needs[x].append(y)
            needs[y].append(x)
    at = [0] * len(batches)
    posted = set()
    changed = True
    while changed:
        changed = False
        posted.update((r, at[r]) for r in range(len(batches)) if at[r] < len(batches[r]))
        for r in range(len(batches)):
            if at[r] < len(batches[r]) and all(y in posted for y in needs[r, at[r]]):
                at[r] += 1
                changed = True
    return {r for r in range(len(batches)) if at[r] < len(batches[r])}


def _naive_lowering(schedule):
    """The first communication pass: SEND right after the producer, RECV right before
    the consumer. Safe only with non-blocking sends."""
    place, last = schedule.placement, schedule.num_stages - 1
    rows = []
    for row in schedule.actions:
        out = []
        for a in row:
            fwd = a.kind is ActionKind.FORWARD
            before, after = (a.stage - 1, a.stage + 1) if fwd else (a.stage + 1, a.stage - 1)
            remote = [0 <= s <= last and place[s] != place[a.stage] for s in (before, after)]
            if a.kind is not ActionKind.BACKWARD_WEIGHT and remote[0]:
                out.append(
                    Action(a.stage, ActionKind.RECV_F if fwd else ActionKind.RECV_B, a.microbatch)
                )
            out.append(a)
            if a.kind is not ActionKind.BACKWARD_WEIGHT and remote[1]:
                out.append(
                    Action(a.stage, ActionKind.SEND_F if fwd else ActionKind.SEND_B, a.microbatch)
                )
        rows.append(tuple(out))
    return Schedule(schedule.name, place, tuple(rows), schedule.num_microbatches)


def test_naive_lowering_of_interleaved_1f1b_deadlocks_with_blocking_sends():
    s = generate("interleaved-1f1b", 2, 4)
    naive = _naive_lowering(s)
    validate(naive, sends="isend")
    error = _reject(naive, "rank 0 blocks in batch \\[2SEND_B0\\]")
    assert error.marks == ((0, 14), (1, 13))
    assert [str(naive.actions[r][i]) for r, i in error.marks] == ["2SEND_B0", "3SEND_B1"]
    validate(add_communication(s))  # the unit-clock pass batches it with 2RECV_B1


def test_naive_lowering_of_zb_v_mismatches_the_shared_channel():
    # rank 0 -> rank 1 carries stage 0's activations and stage 3's gradients
    naive = _naive_lowering(generate("zb-v", 2, 3))
    _reject(naive, "2RECV_B0 is matched, in order, with 0SEND_F2")
    validate(add_communication(generate("zb-v", 2, 3)))


def _reject(schedule, match):
    with pytest.raises(ScheduleError, match=match) as info:
        validate(schedule)
    return info.value


@st.composite
def perturbed(draw):
    """A lowered generator schedule with a few SEND/RECV actions moved a little.

    Such moves split or merge batches, which is what blocking sends are sensitive to;
    moves that break a dependency or the channel order are rejected by the test.
    """
    name = draw(st.sampled_from(["gpipe", "1f1b", "zb-h1", "zb-v", "interleaved-1f1b"]))
    p = draw(st.integers(2, 4))
    m = p * draw(st.integers(1, 2)) if name == "interleaved-1f1b" else draw(st.integers(1, 6))
    lower = draw(st.sampled_from([add_communication, _naive_lowering]))
    rows = [list(row) for row in lower(generate(name, p, m)).actions]
    for _ in range(draw(st.integers(0, 6))):
        row = rows[draw(st.integers(0, p - 1))]
        comms = [i for i, a in enumerate(row) if not a.kind.is_compute]
        if not comms:
            continue
        i = draw(st.sampled_from(comms))
        a = row[i]
        if a.kind in SENDS:  # later, or earlier up to its producer
            j = i + draw(st.integers(-2, 4))
        else:  # later up to its consumer (as a naive lowering would), or earlier
            consumer = next(
                k
                for k in range(i + 1, len(row))
                if row[k].kind.is_compute
                and (row[k].stage, row[k].microbatch) == (a.stage, a.microbatch)
            )
            j = draw(st.integers(i - 2, consumer - 1))
        row.insert(min(max(j, 0), len(row) - 1), row.pop(i))
    return Schedule(name, generate(name, p, m).placement, tuple(map(tuple, rows)), m)


@settings(max_examples=300, deadline=None)
@given(perturbed())
def test_kernel_agrees_with_the_fixpoint_model(schedule):
    try:
        validate(schedule, sends="isend")
    except ScheduleError:
        assume(False)
    stuck = reference_stuck_ranks(schedule)
    event("deadlocks" if stuck else "completes")
    try:
        validate(schedule, sends="batched")
    except ScheduleError as error:
        assert "deadlock with blocking sends" in error.reason
        assert {r for r, _ in error.marks} == stuck
        for r, step in error.marks:
            assert not schedule.actions[r][step].kind.is_compute
    else:
        assert stuck == set()


def test_every_generator_passes_without_perturbation():
    for name, v in [("gpipe", None), ("1f1b", None), ("zb-h1", None), ("zb-v", None),
                    ("interleaved-1f1b", 3)]:  # fmt: skip
        schedule = add_communication(generate(name, 3, 6, v))
        assert reference_stuck_ranks(schedule) == set()
        validate(schedule)
