"""The one-shot path: plain buffers are checked in compiled code, anything else is not
touched and goes through the full checks (whose messages are unchanged)."""

import numpy as np
import pytest

import ringpipe
from ringpipe.kernels.memory import LAYOUT, addresses, plain_addresses
from ringpipe.kernels.numba_exec import DEFAULT_TUNING
from ringpipe.kernels.numba_oneshot import run_plain_in_place
from ringpipe.kernels.registry import step_table

DTYPES = [np.float16, np.float32, np.float64, np.int32, np.int64]


def ranks(n=4, size=1000, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(-8, 9, size).astype(dtype) for _ in range(n)]


def test_layout_probe_matches_this_numpy():
    assert LAYOUT is not None  # CPython + NumPy: the documented PyArrayObject layout
    bufs = ranks()
    assert plain_addresses(bufs, 4).tolist() == addresses(bufs).tolist()


@pytest.mark.parametrize("make", [
    lambda b: b[:2] + [b[2].astype(np.float64)] + b[3:],       # mixed dtype
    lambda b: b[:1] + [b[1].reshape(10, 100)] + b[2:],          # other shape
    lambda b: b[:1] + [np.ma.array(b[1])] + b[2:],              # subclass
    lambda b: b[:1] + [np.ones(2000, np.float32)[::2]] + b[2:],  # not contiguous
    lambda b: b[:1] + [b[0]] + b[2:],                           # same buffer twice
    lambda b: b[:1] + [np.frombuffer(b[1].tobytes(), np.float32)] + b[2:],  # read-only
], ids=["dtype", "shape", "subclass", "strided", "aliased", "readonly"])
def test_not_plain_touches_nothing(make):
    bufs = make(ranks())
    before = [np.array(b, copy=True) for b in bufs]
    assert plain_addresses(bufs, 4) is None
    assert not run_plain_in_place(step_table("all_reduce", "tree", 4), bufs, "sum",
                                  DEFAULT_TUNING)
    for b, was in zip(bufs, before, strict=True):
        assert np.asarray(b).tobytes() == was.tobytes()


def test_overlapping_views_are_not_plain_but_adjacent_ones_are():
    whole = np.arange(2000, dtype=np.float32)
    assert plain_addresses([whole[:1000], whole[1000:]], 4) is not None
    assert plain_addresses([whole[:1000], whole[999:1999]], 4) is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algorithm", ["ring", "tree"])
@pytest.mark.parametrize("op", ["sum", "max", "min"])
def test_one_shot_is_bitwise_the_numpy_executor(dtype, algorithm, op):
    inputs = ranks(5, 1237, dtype, seed=3)
    fast = [x.copy() for x in inputs]
    assert run_plain_in_place(step_table("all_reduce", algorithm, 5), fast, op,
                              DEFAULT_TUNING)
    ref = ringpipe.all_reduce([x.copy() for x in inputs], algorithm, "numpy", op)
    for r in range(5):
        assert fast[r].tobytes() == ref[r].tobytes()


def test_public_errors_unchanged_for_non_plain_inputs():
    bufs = ranks()
    frozen = [b.copy() for b in bufs]
    frozen[2].flags.writeable = False
    with pytest.raises(ValueError, match=r"all_reduce: rank 2: buffers\[2\] is read-only"):
        ringpipe.all_reduce(frozen)
    with pytest.raises(ValueError, match=r"overlaps"):
        ringpipe.all_reduce([bufs[0], bufs[0]])
    with pytest.raises(ValueError, match="unknown op"):
        ringpipe.all_reduce(bufs, op="prod")


def test_tuple_of_ranks_returns_a_list():
    bufs = tuple(ranks(3, 10, np.int64))
    out = ringpipe.all_reduce(bufs, "ring", "numba")
    assert isinstance(out, list) and all(o is b for o, b in zip(out, bufs, strict=True))
    assert (out[0] == sum(ranks(3, 10, np.int64))).all()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.int64])
@pytest.mark.parametrize("algorithm", ["ring", "tree"])
def test_out_of_place_one_shot_is_bitwise_the_reference_and_leaves_inputs(dtype, algorithm):
    inputs = ranks(5, 1237, dtype, seed=4)
    kept = [x.copy() for x in inputs]
    outs = [np.empty_like(x) for x in inputs]
    assert run_plain_in_place(step_table("all_reduce", algorithm, 5), inputs, "sum",
                              DEFAULT_TUNING, outs)
    ref = ringpipe.all_reduce([x.copy() for x in kept], algorithm, "numpy")
    for r in range(5):
        assert outs[r].tobytes() == ref[r].tobytes()
        assert inputs[r].tobytes() == kept[r].tobytes()


def test_out_of_place_all_reduce_takes_the_one_shot_path(monkeypatch):
    import ringpipe.collectives.api as api

    def full_checks(*args, **kwargs):
        raise AssertionError("the out-of-place all-reduce took the full checks")

    bufs = ranks(8, 16 << 10)
    outs = [np.empty_like(b) for b in bufs]
    want = sum(b.astype(np.float64) for b in bufs)
    monkeypatch.setattr(api, "_common", full_checks)
    got = ringpipe.all_reduce(bufs, "ring", "numba", out=outs)
    assert all(g is o for g, o in zip(got, outs, strict=True))
    assert all((o == want).all() for o in outs)


@pytest.mark.parametrize("make", [
    lambda b, o: (b, o[:1] + [b[1]] + o[2:]),                    # an output is an input
    lambda b, o: (b, o[:1] + [o[0]] + o[2:]),                    # two outputs alias
    lambda b, o: ([np.frombuffer(b[0].tobytes(), np.float32)] + b[1:], o),  # read-only in
    lambda b, o: (b, o[:1] + [np.empty(1000, np.float64)] + o[2:]),  # wrong dtype
], ids=["out-is-input", "aliased-outputs", "readonly-input", "dtype"])
def test_out_of_place_not_plain_touches_nothing(make):
    bufs, outs = make(ranks(), [np.zeros(1000, np.float32) for _ in range(4)])
    before = [np.array(x, copy=True) for x in (*bufs, *outs)]
    assert not run_plain_in_place(step_table("all_reduce", "ring", 4), bufs, "sum",
                                  DEFAULT_TUNING, outs)
    for x, was in zip((*bufs, *outs), before, strict=True):
        assert np.asarray(x).tobytes() == was.tobytes()


def test_out_of_place_uses_the_thread_pool_from_the_same_size_as_in_place():
    from ringpipe.kernels.numba_exec import launch_geometry

    table = step_table("all_reduce", "ring", 8)
    threshold = DEFAULT_TUNING.parallel_min_bytes // (8 * 4)  # float32 elements per rank
    for count, parallel in ((threshold // 2, False), (threshold, True)):
        for copy_in in (False, True):
            assert launch_geometry(table, count, 4, copy_in, DEFAULT_TUNING)[4] is parallel
