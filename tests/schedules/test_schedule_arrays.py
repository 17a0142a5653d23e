"""Array-built schedules: equal to the row-by-row definitions, and the lazily built
``actions`` behave like the eager ones (equality, hashing, pickling, errors)."""

import pickle

import numpy as np
import pytest

from ringpipe.schedules import (
    ActionKind,
    Schedule,
    ScheduleError,
    add_communication,
    gpipe,
    interleaved_one_f_one_b,
    one_f_one_b,
    simulate,
    validate,
    zb_h1,
    zb_v,
)
from ringpipe.schedules.actions import (
    Action,
    interleaved_placement,
    one_chunk_placement,
    v_shape_placement,
)
from ringpipe.schedules.encoded import encode, encoded_arrays
from ringpipe.schedules.generators.interleaved import _interleaved_row
from ringpipe.schedules.generators.one_f_one_b import one_f_one_b_row
from ringpipe.schedules.generators.zero_bubble import _zb_h1_row
from ringpipe.schedules.generators.zero_bubble_v import _zb_v_row

F, B = ActionKind.FORWARD, ActionKind.FULL_BACKWARD


@pytest.mark.parametrize("p", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("m", [1, 2, 3, 7, 16])
def test_one_f_one_b_and_gpipe_equal_their_row_definitions(p, m):
    rows = tuple(one_f_one_b_row(p, m, r) for r in range(p))
    assert one_f_one_b(p, m) == Schedule("1f1b", one_chunk_placement(p), rows, m)
    eager = tuple(tuple([Action(r, F, k) for k in range(m)] + [Action(r, B, k) for k in range(m)])
                  for r in range(p))
    assert gpipe(p, m).actions == eager


@pytest.mark.parametrize("p", [1, 2, 3, 6])
@pytest.mark.parametrize("m", [1, 2, 5, 9, 17])
def test_zero_bubble_schedules_equal_their_row_definitions(p, m):
    h1 = tuple(_zb_h1_row(p, m, r) for r in range(p))
    assert zb_h1(p, m) == Schedule("zb-h1", one_chunk_placement(p), h1, m)
    v = tuple(_zb_v_row(p, m, r) for r in range(p))
    assert zb_v(p, m) == Schedule("zb-v", v_shape_placement(p), v, m)


@pytest.mark.parametrize("p", [1, 2, 4, 5])
@pytest.mark.parametrize("v", [2, 3])
@pytest.mark.parametrize("groups", [1, 2, 3])
def test_interleaved_equals_its_row_definition(p, v, groups):
    m = p * groups
    rows = tuple(_interleaved_row(p, m, v, r) for r in range(p))
    want = Schedule("interleaved-1f1b", interleaved_placement(p, v), rows, m)
    got = interleaved_one_f_one_b(p, m, v)
    assert got == want and hash(got) == hash(want)


def test_lazy_actions_are_plain_actions_and_survive_pickling():
    lowered = add_communication(one_f_one_b(4, 6))
    assert "actions" not in vars(lowered)  # nothing built yet
    assert lowered.num_ranks == 4 and lowered.has_comms
    assert lowered.kinds == frozenset(ActionKind) - {ActionKind.BACKWARD_INPUT,
                                                     ActionKind.BACKWARD_WEIGHT,
                                                     ActionKind.OVERLAP_F_B}
    again = pickle.loads(pickle.dumps(lowered))
    assert again == lowered
    assert all(type(a) is Action and type(a.stage) is int for row in lowered.actions
               for a in row)
    eager = Schedule(lowered.name, lowered.placement, lowered.actions,
                     lowered.num_microbatches)
    assert eager == lowered and simulate(eager).makespan == simulate(lowered).makespan


def test_array_built_schedule_is_checked_like_the_constructor():
    enc = encoded_arrays(np.zeros(2), np.zeros(2), np.arange(2), np.array([0, 2]), (0,), 2)
    with pytest.raises(ValueError, match="num_microbatches"):
        Schedule.from_arrays("x", (0,), enc, 0)
    with pytest.raises(ValueError, match="placement"):
        Schedule.from_arrays("x", (1,), enc, 2)
    with pytest.raises(AttributeError):
        _ = one_f_one_b(2, 2).no_such_field


def test_encoding_is_cached_and_frozen():
    schedule = one_f_one_b(3, 4)
    enc = encode(schedule)
    assert encode(schedule) is enc and not enc.kind.flags.writeable


def test_validate_errors_still_name_actions_of_an_array_built_schedule():
    enc = encode(one_f_one_b(2, 2))
    kind = enc.kind.copy()
    kind[[4, 5]] = kind[[5, 4]]  # rank 1 runs F0 B0 F1 B1: now B0 before F0
    broken = Schedule.from_arrays("broken", (0, 1), encoded_arrays(
        enc.stage, kind, enc.microbatch, enc.row_start, (0, 1), 2), 2)
    with pytest.raises(ScheduleError, match=r"1B0 runs before 1F0"):
        validate(broken)
