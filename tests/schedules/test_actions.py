"""The IR: action text form, Schedule structure, placements, CSV round trip."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringpipe.schedules import (
    Action,
    ActionKind,
    Schedule,
    ScheduleError,
    add_communication,
    generate,
    infer_placement,
    interleaved_placement,
    load_csv,
    save_csv,
    schedule_from_csv,
    schedule_to_csv,
    v_shape_placement,
)

kinds = st.sampled_from([k for k in ActionKind if k is not ActionKind.OVERLAP_F_B])
actions = st.builds(Action, st.integers(0, 999), kinds, st.integers(0, 999), st.none())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0F1", Action(0, ActionKind.FORWARD, 1)),
        ("3B0", Action(3, ActionKind.FULL_BACKWARD, 0)),
        ("2I4", Action(2, ActionKind.BACKWARD_INPUT, 4)),
        ("2W4", Action(2, ActionKind.BACKWARD_WEIGHT, 4)),
        ("3SEND_F1", Action(3, ActionKind.SEND_F, 1)),
        ("1RECV_B0", Action(1, ActionKind.RECV_B, 0)),
        (" 12F34 ", Action(12, ActionKind.FORWARD, 34)),
    ],
)
def test_parse_pytorch_text_form(text, expected):
    assert Action.parse(text) == expected
    assert str(expected) == text.strip()


@given(actions)
def test_text_round_trip(action):
    assert Action.parse(str(action)) == action


@pytest.mark.parametrize("text", ["", "F1", "0F", "0X1", "0f1", "-1F0", "0SEND1", "0F1x"])
def test_parse_rejects_bad_text(text):
    with pytest.raises(ValueError, match="text"):
        Action.parse(text)


def test_parse_rejects_non_string():
    with pytest.raises(TypeError, match="text"):
        Action.parse(3)


def test_kind_properties():
    assert ActionKind.FORWARD.is_compute and not ActionKind.SEND_F.is_compute
    assert ActionKind.FORWARD == "F" and ActionKind.RECV_B.code == 7


def test_schedule_reports_kinds():
    one = generate("1f1b", 3, 4)
    zb = generate("zb-h1", 3, 4)
    assert one.kinds == {ActionKind.FORWARD, ActionKind.FULL_BACKWARD}
    assert not one.uses_split_backward and zb.uses_split_backward
    lowered = add_communication(one)
    assert lowered.has_comms and not one.has_comms
    assert lowered.without_comms() == one
    assert lowered.compute_actions() == one.actions


def test_schedule_structure_errors():
    row = (Action(0, ActionKind.FORWARD, 0),)
    with pytest.raises(ValueError, match="num_microbatches"):
        Schedule("x", (0,), (row,), 0)
    with pytest.raises(ValueError, match="placement"):
        Schedule("x", (1,), (row,), 1)
    with pytest.raises(ValueError, match="same number of stages"):
        Schedule("x", (0, 0, 1), (row, row), 1)
    with pytest.raises(TypeError, match="name"):
        Schedule(3, (0,), (row,), 1)


def test_placements():
    assert interleaved_placement(3, 2) == (0, 1, 2, 0, 1, 2)
    assert v_shape_placement(3) == (0, 1, 2, 2, 1, 0)
    s = generate("interleaved-1f1b", 4, 8, 3)
    assert s.stages_of(1) == (1, 5, 9) and s.chunks_per_rank == 3
    assert infer_placement(s.actions) == s.placement


def test_infer_placement_errors():
    f = ActionKind.FORWARD
    with pytest.raises(ValueError, match="stage 0 runs on ranks 0 and 1"):
        infer_placement([(Action(0, f, 0),), (Action(0, f, 1),)])
    with pytest.raises(ValueError, match=r"stages \[1\] never appear"):
        infer_placement([(Action(0, f, 0),), (Action(2, f, 0),)])


@pytest.mark.parametrize(
    ("name", "p", "m", "v"),
    [
        ("gpipe", 3, 5, None),
        ("1f1b", 4, 7, None),
        ("interleaved-1f1b", 2, 4, 3),
        ("zb-h1", 5, 9, None),
        ("zb-v", 3, 7, None),
    ],
)
@pytest.mark.parametrize("comms", [False, True])
def test_csv_round_trip_is_lossless(name, p, m, v, comms):
    schedule = generate(name, p, m, v)
    if comms:
        schedule = add_communication(schedule)
    back = schedule_from_csv(schedule_to_csv(schedule), name=schedule.name)
    assert back == schedule


@given(st.integers(1, 6), st.integers(1, 8), st.data())
def test_csv_round_trip_keeps_idle_slots(p, m, data):
    base = generate("1f1b", p, m)
    rows = []
    for row in base.actions:
        cells = list(row)
        for _ in range(data.draw(st.integers(0, 3))):
            cells.insert(data.draw(st.integers(0, len(cells))), None)
        rows.append(tuple(cells))
    schedule = Schedule("1f1b", base.placement, tuple(rows), m)
    assert schedule_from_csv(schedule_to_csv(schedule), name="1f1b") == schedule


def test_csv_file_round_trip(tmp_path):
    schedule = generate("zb-h1", 3, 6)
    path = tmp_path / "zb.csv"
    save_csv(schedule, path)
    text = path.read_text()
    assert text.splitlines()[0].startswith("0F0,0F1,0F2,0I0")
    loaded = load_csv(path)
    assert loaded.name == "zb" and loaded.actions == schedule.actions
    assert loaded.placement == schedule.placement and loaded.num_microbatches == 6


def test_csv_bad_cell_names_row_and_column():
    with pytest.raises(ValueError, match="row 1 .*column 2"):
        schedule_from_csv("0F0,0B0\n1F0,1B0,bogus\n")
    with pytest.raises(ValueError, match="no rows"):
        schedule_from_csv("\n\n")


@pytest.mark.parametrize(
    ("text", "reason", "marked"),
    [
        ("0F0,0B0\n2F0,2B0\n", r"stages \[1\] never appear", []),
        ("0F0,0B0\n\n1F0,1B0\n", "3 rank rows but only 2 stages.*none runs on rank 1 ", []),
        ("0F0,1F0,0B0\n1B0\n", "stage 1 runs on ranks 0 and 1", ["1F0", "1B0"]),
        ("0F0,0F2,0B0,0B2\n", "largest is 2 but 1 never appears", []),
        ("0F0,1F0,1B0,0B0\n2F0,2B0\n", "same number of stages, got \\[2, 1\\]", []),
        (",,\n", "no actions", []),
    ],
)
def test_csv_rows_that_form_no_schedule_raise_schedule_error_with_grid(text, reason, marked):
    with pytest.raises(ScheduleError, match=reason) as info:
        schedule_from_csv(text)
    error = info.value
    assert error.schedule is None and len(error.actions) == len(text.splitlines())
    assert error.grid.splitlines()[1].startswith("rank 0 |")
    assert sorted(str(error.actions[r][s]) for r, s in error.marks) == sorted(marked)
    assert all(f"[{cell}]" in error.grid for cell in marked)


def test_action_digits_are_ascii_only():
    with pytest.raises(ValueError):
        Action.parse("\u0660F\u0661")
