"""Generators: exhaustive validation over p, m, v; shapes; argument errors."""

import pytest

from ringpipe.schedules import (
    SCHEDULES,
    ActionKind,
    add_communication,
    generate,
    gpipe,
    interleaved_one_f_one_b,
    one_f_one_b,
    validate,
    zb_h1,
)
from ringpipe.schedules.interleaved import interleaved_warmup

P_RANGE = range(1, 17)
M_RANGE = range(1, 49)


def _check(schedule):
    validate(schedule)
    validate(add_communication(schedule))


@pytest.mark.parametrize("name", ["gpipe", "1f1b", "zb-h1"])
@pytest.mark.parametrize("p", P_RANGE)
def test_every_single_chunk_generator_validates(name, p):
    for m in M_RANGE:
        _check(generate(name, p, m))


@pytest.mark.parametrize("v", [2, 3, 4])
@pytest.mark.parametrize("p", P_RANGE)
def test_every_interleaved_schedule_validates(p, v):
    for m in range(p, 49, p):
        _check(interleaved_one_f_one_b(p, m, v))


def test_1f1b_warmup_then_alternates():
    p, m = 5, 9
    s = one_f_one_b(p, m)
    for r, row in enumerate(s.actions):
        w = min(p - r - 1, m)
        kinds = [a.kind for a in row]
        assert kinds[:w] == [ActionKind.FORWARD] * w
        steady = kinds[w : w + 2 * (m - w)]
        assert steady == [ActionKind.FORWARD, ActionKind.FULL_BACKWARD] * (m - w)
        assert kinds[w + 2 * (m - w) :] == [ActionKind.FULL_BACKWARD] * w


def test_gpipe_is_all_forwards_then_all_backwards():
    s = gpipe(3, 4)
    assert [str(a) for a in s.actions[1]] == [
        "1F0",
        "1F1",
        "1F2",
        "1F3",
        "1B0",
        "1B1",
        "1B2",
        "1B3",
    ]


@pytest.mark.parametrize(("p", "m", "v"), [(4, 8, 2), (3, 9, 3), (2, 2, 4)])
def test_interleaved_warmup_matches_megatron(p, m, v):
    s = interleaved_one_f_one_b(p, m, v)
    for r, row in enumerate(s.actions):
        w = interleaved_warmup(p, m, v, r)
        assert w == min((p - r - 1) * 2 + (v - 1) * p, m * v)
        kinds = [a.kind for a in row]
        assert kinds[:w] == [ActionKind.FORWARD] * w
        if w < m * v:
            assert kinds[w + 1] is ActionKind.FULL_BACKWARD
        # chunks visited in groups of p micro-batches
        assert [a.stage for a in row[:p]] == [r] * min(p, w)


def test_interleaved_order_moves_micro_batch_groups_through_chunks():
    s = interleaved_one_f_one_b(2, 4, 2)
    forwards = [str(a) for a in s.actions[0] if a.kind is ActionKind.FORWARD]
    assert forwards == ["0F0", "0F1", "2F0", "2F1", "0F2", "0F3", "2F2", "2F3"]


def test_zb_h1_defers_r_weight_passes():
    p, m = 4, 8
    s = zb_h1(p, m)
    for r, row in enumerate(s.actions):
        kinds = [a.kind for a in row]
        # the last I is followed by its own W and the r deferred ones
        assert kinds[-(r + 2) :] == [ActionKind.BACKWARD_INPUT] + [ActionKind.BACKWARD_WEIGHT] * (
            r + 1
        )
        assert kinds[: p - r - 1] == [ActionKind.FORWARD] * (p - r - 1)
        assert [a.microbatch for a in row if a.kind is ActionKind.BACKWARD_WEIGHT] == list(range(m))


@pytest.mark.parametrize("generator", [gpipe, one_f_one_b, zb_h1])
def test_bad_counts(generator):
    with pytest.raises(ValueError, match="num_ranks: must be >= 1, got 0"):
        generator(0, 4)
    with pytest.raises(ValueError, match="num_microbatches: must be >= 1, got 0"):
        generator(2, 0)
    with pytest.raises(TypeError, match="num_ranks: expected int"):
        generator(2.0, 4)
    with pytest.raises(TypeError, match="num_microbatches: expected int"):
        generator(2, True)


def test_interleaved_constraints_are_stated():
    with pytest.raises(ValueError, match="m to be a multiple of p = 4.*got m = 6"):
        interleaved_one_f_one_b(4, 6, 2)
    with pytest.raises(ValueError, match="v >= 2"):
        interleaved_one_f_one_b(4, 8, 1)


def test_registry():
    assert set(SCHEDULES) == {"gpipe", "1f1b", "interleaved-1f1b", "zb-h1"}
    assert generate("interleaved-1f1b", 2, 4).chunks_per_rank == 2
    assert generate("1f1b", 2, 4, 1) == one_f_one_b(2, 4)
    with pytest.raises(ValueError, match="unknown schedule 'nope'.*gpipe"):
        generate("nope", 2, 4)
    with pytest.raises(ValueError, match="1f1b does not take chunks"):
        generate("1f1b", 2, 4, 2)
    for spec in SCHEDULES.values():
        assert spec.constraints and spec.reference
