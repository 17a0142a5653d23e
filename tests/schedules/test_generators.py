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
    zb_v,
)
from ringpipe.schedules.generators.interleaved import interleaved_warmup
from ringpipe.schedules.generators.zero_bubble_v import zb_v_pattern

P_RANGE = range(1, 17)
M_RANGE = range(1, 49)


def _check(schedule):
    validate(schedule)
    validate(add_communication(schedule))  # default: batched blocking sends


@pytest.mark.parametrize("name", ["gpipe", "1f1b", "zb-h1", "zb-v"])
@pytest.mark.parametrize("p", P_RANGE)
def test_every_generator_without_chunks_validates(name, p):
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


def test_zb_v_places_a_v_and_follows_the_pattern():
    p, m = 3, 6
    s = zb_v(p, m)
    assert s.placement == (0, 1, 2, 2, 1, 0) and s.chunks_per_rank == 2
    # rank 2 holds the turn of the V: stages 2 and 3
    assert " ".join(map(str, s.actions[2][:8])) == "2F0 3F0 2F1 3F1 2F2 3F2 3I0 3W0"
    # rank 0: 2p-1 = 5 forwards of stage 0, then the last stage's F I W
    assert " ".join(map(str, s.actions[0][:8])) == "0F0 0F1 0F2 0F3 0F4 5F0 5I0 5W0"
    for r, row in enumerate(s.actions):
        # each (stage, kind) stream runs its micro-batches in order, once each
        for stage in (r, 2 * p - 1 - r):
            for kind in (ActionKind.FORWARD, ActionKind.BACKWARD_INPUT, ActionKind.BACKWARD_WEIGHT):
                mbs = [a.microbatch for a in row if a.stage == stage and a.kind is kind]
                assert mbs == list(range(m)), (r, stage, kind)
        # 2r weight passes deferred to the very end
        tail = row[len(row) - 2 * r :] if r else ()
        assert all(a.kind is ActionKind.BACKWARD_WEIGHT for a in tail)


@pytest.mark.parametrize(("p", "m"), [(1, 1), (4, 3), (4, 7), (5, 20)])
def test_zb_v_pattern_has_n_of_each_symbol(p, m):
    n = max(m, 2 * p - 1)
    for r in range(p):
        word = zb_v_pattern(p, m, r)
        assert [word.count(symbol) for symbol in range(6)] == [n] * 6
        assert len(zb_v(p, m).actions[r]) == 6 * m  # padded micro-batches dropped


@pytest.mark.parametrize("generator", [gpipe, one_f_one_b, zb_h1, zb_v])
def test_bad_counts(generator):
    with pytest.raises(ValueError, match="num_ranks must be >= 1, got 0"):
        generator(0, 4)
    with pytest.raises(ValueError, match="num_microbatches must be >= 1, got 0"):
        generator(2, 0)
    with pytest.raises(TypeError, match="num_ranks must be an int"):
        generator(2.0, 4)
    with pytest.raises(TypeError, match="num_microbatches must be an int"):
        generator(2, True)


def test_interleaved_constraints_are_stated():
    with pytest.raises(ValueError, match="m to be a multiple of p = 4.*got m = 6"):
        interleaved_one_f_one_b(4, 6, 2)
    with pytest.raises(ValueError, match="v >= 2"):
        interleaved_one_f_one_b(4, 8, 1)


def test_registry():
    assert set(SCHEDULES) == {"gpipe", "1f1b", "interleaved-1f1b", "zb-h1", "zb-v", "dualpipev"}
    assert generate("interleaved-1f1b", 2, 4).chunks_per_rank == 2
    assert generate("zb-v", 2, 4) == generate("zb-v", 2, 4, 2) == zb_v(2, 4)
    assert SCHEDULES["zb-v"].default_chunks == 2 and not SCHEDULES["zb-v"].takes_chunks
    with pytest.raises(ValueError, match=r"zb-v does not take.*always places 2 chunks per rank"):
        generate("zb-v", 2, 4, 3)
    assert generate("1f1b", 2, 4, 1) == one_f_one_b(2, 4)
    with pytest.raises(ValueError, match="unknown schedule 'nope'.*gpipe"):
        generate("nope", 2, 4)
    with pytest.raises(ValueError, match="1f1b does not take chunks"):
        generate("1f1b", 2, 4, 2)
    for spec in SCHEDULES.values():
        assert spec.constraints and spec.reference
