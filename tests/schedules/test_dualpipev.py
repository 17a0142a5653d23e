"""DualPipeV: PyTorch's order, the overlapped F/B pair in the IR, and every pass over it."""

import json

import pytest

from ringpipe.schedules import (
    Action,
    ActionKind,
    Schedule,
    ScheduleError,
    add_communication,
    chrome_trace,
    dualpipev,
    generate,
    overlap_f_b,
    schedule_from_csv,
    schedule_to_csv,
    simulate,
    summary,
    v_shape_placement,
    validate,
)
from ringpipe.schedules.encoded import encode
from ringpipe.schedules.generators.dualpipev import dualpipev_row

#: PyTorch 2.13's ScheduleDualPipeV order for p = 2, m = 4 (``str`` of its actions), so
#: that the order is pinned even where torch is not installed.
TORCH_P2_M4 = [
    ["0F0", "0F1", "0F2", "3F0", "3I0", "3W0", "3F1", "(0F3;3B1)OVERLAP_F_B",
     "(3F2;0B0)OVERLAP_F_B", "3B2", "(3F3;0B1)OVERLAP_F_B", "3B3", "0I2", "0W2", "0I3", "0W3"],
    ["1F0", "2F0", "1F1", "2F1", "1F2", "2B0", "(2F2;1B0)OVERLAP_F_B", "(1F3;2B1)OVERLAP_F_B",
     "(2F3;1B1)OVERLAP_F_B", "2B2", "1B2", "2I3", "1I3", "2W3", "1W3"],
]


def _rows(p, m):
    return [[str(a) for a in dualpipev_row(p, m, r)] for r in range(p)]


def test_pinned_order_for_p2_m4():
    assert _rows(2, 4) == TORCH_P2_M4


def _torch_rows(schedules_module, p, m):
    # _calculate_single_rank_operations reads only the group size and the micro-batch count
    obj = object.__new__(schedules_module.ScheduleDualPipeV)
    obj.pp_group_size, obj._n_microbatches = p, m
    return [[str(a) for a in obj._calculate_single_rank_operations(r)] for r in range(p)]


@pytest.mark.parametrize("p", range(1, 9))
def test_order_equals_pytorch_everywhere_it_accepts_the_configuration(p):
    torch_schedules = pytest.importorskip("torch.distributed.pipelining.schedules")
    # PyTorch accepts m >= 2p (its own check): the steady state repeats, so 2p .. 6p and a
    # long pipeline cover every phase length
    for m in [*range(2 * p, 6 * p + 1), 16 * p + 3]:
        assert _rows(p, m) == _torch_rows(torch_schedules, p, m), (p, m)


def test_refuses_what_pytorch_refuses():
    with pytest.raises(ValueError, match="m >= 2p = 8"):
        dualpipev(4, 7)
    with pytest.raises(ValueError, match="always places 2 chunks"):
        generate("dualpipev", 2, 4, 3)


@pytest.mark.parametrize("p", range(1, 9))
def test_lowered_with_messages_it_passes_the_batched_blocking_dry_run(p):
    for m in (2 * p, 2 * p + 1, 3 * p + 2):
        sched = dualpipev(p, m)
        assert sched.placement == v_shape_placement(p) and sched.has_overlap
        lowered = add_communication(sched)
        validate(lowered, "batched")
        pairs = [a for row in lowered.actions for a in row if a is not None
                 and a.kind is ActionKind.OVERLAP_F_B]
        assert len(pairs) == sum(a.kind is ActionKind.OVERLAP_F_B for row in sched.actions
                                 for a in row) > 0  # lowering keeps every pair whole
        busy = simulate(lowered).busy
        assert all(b == m * 6 for b in busy)  # two stages of F + I + W per micro-batch


def test_pair_text_csv_json_and_chrome_trace():
    pair = Action.parse("(0F7;7B3)OVERLAP_F_B")
    assert pair == overlap_f_b(Action.parse("0F7"), Action.parse("7B3"))
    assert str(pair) == "(0F7;7B3)OVERLAP_F_B" and pair.parts[1] == Action.parse("7B3")
    sched = dualpipev(3, 7)
    again = schedule_from_csv(schedule_to_csv(sched), name="dualpipev")
    assert again == sched
    lowered = add_communication(sched)
    assert schedule_from_csv(schedule_to_csv(lowered), name="dualpipev") == lowered
    result = simulate(lowered)
    doc = json.loads(json.dumps(summary(result)))
    assert "(0F5;5B2)OVERLAP_F_B" in doc["actions"]["0"]
    events = [e for e in chrome_trace(result)["traceEvents"] if e["ph"] == "X"]
    halves = [e for e in events if e["args"].get("overlap") == "(0F5;5B2)OVERLAP_F_B"]
    assert [e["name"] for e in halves] == ["0F5", "5B2"]
    assert halves[0]["ts"] + halves[0]["dur"] == halves[1]["ts"]  # back to back
    # encoded as two slots, the first flagged
    enc = encode(sched)
    assert enc.pair.sum() == sum(a.kind is ActionKind.OVERLAP_F_B for row in sched.actions
                                 for a in row)


@pytest.mark.parametrize("text,match", [
    ("(0B1;3F2)OVERLAP_F_B", "a forward then a full or input-gradient backward"),
    ("(0F1;0B0)OVERLAP_F_B", "pairs a stage with itself"),
    ("(0F1;3W0)OVERLAP_F_B", "a forward then"),
])
def test_malformed_pairs_are_refused(text, match):
    with pytest.raises(ValueError, match=match):
        Action.parse(text)


def test_a_pair_starts_only_with_both_inputs():
    # rank 0 holds stages 0 and 3, rank 1 stages 1 and 2 (p = 2, m = 1)
    good = [["0F0", "3F0", "3B0", "0B0"], ["1F0", "2F0", "2B0", "1B0"]]
    validate(Schedule("x", (0, 1, 1, 0), tuple(tuple(map(Action.parse, r)) for r in good), 1))
    # the pair's backward half needs 1B0, which waits for the pair's forward half: deadlock
    bad = [["0F0", "(3F0;0B0)OVERLAP_F_B", "3B0"], ["1F0", "2F0", "2B0", "1B0"]]
    sched = Schedule("x", (0, 1, 1, 0), tuple(tuple(map(Action.parse, r)) for r in bad), 1)
    with pytest.raises(ScheduleError, match="deadlock: .*rank 0 at \\(3F0;0B0\\)OVERLAP_F_B "
                                            "waits for the backward of stage 1"):
        validate(sched)
    # sequential semantics would have let 3F0 run first; the pair's timing starts it late
    ok = [["0F0", "0F1", "3F0", "3B0", "(3F1;0B0)OVERLAP_F_B", "3B1", "0B1"],
          ["1F0", "1F1", "2F0", "2F1", "2B0", "1B0", "2B1", "1B1"]]
    sched = Schedule("x", (0, 1, 1, 0), tuple(tuple(map(Action.parse, r)) for r in ok), 2)
    line = simulate(sched).timelines[0]  # F = I = W = 1, B = 2, free messages
    f1 = next(t for t in line if str(t.action) == "3F1")
    b0 = next(t for t in line if str(t.action) == "0B0")
    # 3F1's input is there at 5, but 0B0's gradient (1B0 on rank 1) only at 11
    assert f1.pair is not None and (f1.start, f1.end, b0.start, b0.end) == (11, 12, 12, 14)
