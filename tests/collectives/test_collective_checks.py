"""Bad input: a TypeError/ValueError naming rank and argument, and no buffer touched."""

import numpy as np
import pytest

import ringpipe

# np.matrix is deprecated (a PendingDeprecationWarning); these tests build some on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")

COLLECTIVES = {
    "all_reduce": lambda b, **kw: ringpipe.all_reduce(b, **kw),
    "reduce_scatter": lambda b, **kw: ringpipe.reduce_scatter(b, **kw),
    "all_gather": lambda b, **kw: ringpipe.all_gather(b, **kw),
    "broadcast": lambda b, **kw: ringpipe.broadcast(b, **kw),
    "reduce": lambda b, **kw: ringpipe.reduce(b, **kw),
}


def ranks(n=4, size=6, dtype=np.float32):
    return [np.arange(size, dtype=dtype) + 10 * r for r in range(n)]


def assert_rejected(name, bufs, exc, match, **kw):
    before = [b.copy() for b in bufs if isinstance(b, np.ndarray)]
    with pytest.raises(exc, match=match):
        COLLECTIVES[name](bufs, **kw)
    after = [b for b in bufs if isinstance(b, np.ndarray)]
    for x, y in zip(before, after, strict=True):
        assert x.tobytes() == y.tobytes(), "a buffer was modified before the error"


@pytest.mark.parametrize("name", list(COLLECTIVES))
@pytest.mark.parametrize("backend", ["numpy", "numba"])
class TestEveryCollective:
    def test_empty_list(self, name, backend):
        assert_rejected(name, [], ValueError, f"{name}: buffers is empty", backend=backend)

    def test_not_a_list(self, name, backend):
        with pytest.raises(TypeError, match="buffers must be a list"):
            COLLECTIVES[name](np.zeros(4), backend=backend)

    def test_not_an_array(self, name, backend):
        bufs = ranks()
        bufs[2] = [1.0] * 6
        assert_rejected(name, bufs, TypeError, r"rank 2: buffers\[2\] is a list", backend=backend)

    def test_shape_mismatch(self, name, backend):
        bufs = ranks()
        bufs[3] = np.zeros(7, np.float32)
        assert_rejected(name, bufs, ValueError, r"rank 3: buffers\[3\] has shape \(7,\)",
                        backend=backend)

    def test_dtype_mismatch(self, name, backend):
        bufs = ranks()
        bufs[1] = bufs[1].astype(np.float64)
        assert_rejected(name, bufs, TypeError, r"rank 1: buffers\[1\] has dtype float64",
                        backend=backend)

    def test_unsupported_dtype(self, name, backend):
        bufs = [np.zeros(4, np.complex64) for _ in range(2)]
        assert_rejected(name, bufs, TypeError, "rank 0: .*unsupported dtype complex64",
                        backend=backend)

    def test_non_contiguous(self, name, backend):
        bufs = ranks(size=6)
        base = np.arange(12, dtype=np.float32)
        bufs[2] = base[::2]
        assert_rejected(name, bufs, ValueError, "rank 2: .*not C-contiguous", backend=backend)

    def test_read_only(self, name, backend):
        bufs = ranks()
        bufs[1].flags.writeable = False
        assert_rejected(name, bufs, ValueError, r"rank 1: buffers\[1\] is read-only",
                        backend=backend)

    def test_aliased_ranks(self, name, backend):
        bufs = ranks()
        bufs[3] = bufs[0]
        assert_rejected(name, bufs, ValueError, "overlaps", backend=backend)

    def test_unknown_algorithm_and_backend(self, name, backend):
        assert_rejected(name, ranks(), ValueError, "unknown algorithm 'butterfly'",
                        algorithm="butterfly", backend=backend)
        assert_rejected(name, ranks(), ValueError, "unknown backend 'cuda'", backend="cuda")


@pytest.mark.parametrize("name", ["all_reduce", "reduce_scatter", "reduce"])
def test_unknown_op(name):
    assert_rejected(name, ranks(), ValueError, "unknown op 'prod'", op="prod")
    assert_rejected(name, ranks(), TypeError, "op must be a str", op=np.add)


@pytest.mark.parametrize("name", ["broadcast", "reduce"])
def test_root_out_of_range(name):
    assert_rejected(name, ranks(4), ValueError, r"root 4 out of range for 4 ranks", root=4)
    assert_rejected(name, ranks(4), ValueError, "root -1 out of range", root=-1)
    assert_rejected(name, ranks(4), TypeError, "root must be an int", root=1.0)


def test_tree_not_offered_for_reduce_scatter():
    assert_rejected("reduce_scatter", ranks(), ValueError, "choose one of 'ring'",
                    algorithm="tree")


def test_out_problems_are_reported_before_anything_runs():
    bufs = ranks()
    outs = [np.zeros(6, np.float32) for _ in range(4)]
    outs[2] = outs[2].astype(np.float64)
    assert_rejected("all_reduce", bufs, TypeError, r"rank 2: out\[2\] has dtype float64",
                    out=outs)
    outs = [np.zeros(6, np.float32) for _ in range(3)]
    assert_rejected("all_reduce", bufs, ValueError, "out has 3 arrays for 4 ranks", out=outs)
    outs = [np.zeros(5, np.float32) for _ in range(4)]
    assert_rejected("all_reduce", bufs, ValueError, r"out\[0\] has shape \(5,\)", out=outs)
    outs = [np.zeros(6, np.float32) for _ in range(4)]
    outs[1] = bufs[2]  # writing rank 1's result over rank 2's input
    assert_rejected("all_reduce", bufs, ValueError, "overlaps", out=outs)
    outs = [np.zeros(2, np.float32) for _ in range(4)]
    assert_rejected("reduce_scatter", ranks(4, 6), ValueError,
                    r"rank 0: out\[0\] has 2 elements but chunk 0 of 6 over 4 ranks has 2|"
                    r"rank 2: out\[2\] has 2 elements but chunk 2", out=outs)
    outs = [np.zeros(5, np.float32) for _ in range(4)]
    assert_rejected("all_gather", ranks(4, 2), ValueError, r"rank 0: out\[0\] has 5 elements, "
                    r"need 4 ranks x 2 = 8", out=outs)


def test_read_only_inputs_are_fine_out_of_place():
    bufs = ranks()
    for b in bufs:
        b.flags.writeable = False
    outs = [np.empty(6, np.float32) for _ in range(4)]
    for backend in ("numpy", "numba"):
        ringpipe.all_reduce(bufs, backend=backend, out=outs)
        np.testing.assert_array_equal(outs[3], np.arange(6) * 4 + 60)


def test_out_may_be_the_input_itself():
    bufs = ranks()
    got = ringpipe.all_reduce(bufs, out=bufs)
    np.testing.assert_array_equal(got[0], np.arange(6) * 4 + 60)


def test_adjacent_buffers_pass_and_one_element_of_overlap_is_caught():
    """The in-place fast path (equal sizes, sorted start gaps) agrees with the sweep."""
    backing = np.arange(12, dtype=np.float64)
    adjacent = [backing[0:4], backing[4:8], backing[8:12]]  # touching, not overlapping
    ringpipe.all_reduce(adjacent, backend="numpy")
    assert backing.tolist() == [12.0, 15.0, 18.0, 21.0] * 3
    backing = np.arange(12, dtype=np.float64)
    shifted = [backing[0:4], backing[7:11], backing[3:7]]  # rank 2 shares one element
    with pytest.raises(ValueError, match=r"rank \d: buffers\[\d\] overlaps buffers\[\d\]"):
        ringpipe.all_reduce(shifted, backend="numba")
    assert backing.tolist() == list(range(12))  # nothing touched
    empty = [np.empty(0) for _ in range(3)]
    assert [b.size for b in ringpipe.all_reduce(empty)] == [0, 0, 0]


@pytest.mark.parametrize("name", list(COLLECTIVES))
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_np_matrix_buffers_are_refused(name, backend):
    """np.matrix stays 2-D under reshape(-1): silently wrong chunks if accepted."""
    bufs = [np.matrix(np.arange(8.0).reshape(2, 4) + 10 * r) for r in range(4)]
    assert_rejected(name, bufs, TypeError, r"rank 0: buffers\[0\] is an np.matrix",
                    backend=backend)


def test_np_matrix_on_one_rank_is_named():
    bufs = ranks(3, 8, np.float64)
    bufs[2] = np.matrix(bufs[2])
    assert_rejected("all_reduce", bufs, TypeError, r"rank 2: buffers\[2\] is an np.matrix")


@pytest.mark.parametrize("name,size", [("all_reduce", 8), ("all_gather", 32),
                                       ("reduce_scatter", 2), ("broadcast", 8), ("reduce", 8)])
def test_np_matrix_out_is_refused(name, size):
    bufs = ranks(4, 8, np.float64)
    out = [np.matrix(np.zeros((1, size))) for _ in range(4)]
    assert_rejected(name, bufs, TypeError, r"rank 0: out\[0\] is an np.matrix", out=out)
    assert all((o == 0).all() for o in out)


def test_masked_arrays_are_refused():
    xs = [np.ma.masked_array(np.arange(6.0), mask=[0, 1, 0, 0, 0, 0]) for _ in range(3)]
    with pytest.raises(TypeError, match="rank 0: .*masked array"):
        ringpipe.all_reduce(xs)


def test_persistent_backend_type_error():
    with pytest.raises(TypeError, match="backend must be a str"):
        ringpipe.all_reduce_init([np.zeros(4), np.zeros(4)], backend=3)
    with pytest.raises(TypeError, match="np.matrix"):
        ringpipe.all_reduce_init([np.matrix(np.zeros((1, 4)))] * 2, backend="numpy")


def test_mpi_group_refuses_np_matrix_locally():
    from ringpipe.mpi.agreement import local_problem as _local_problem

    code, kind, message = _local_problem(np.matrix(np.zeros((2, 2))), None, True, None)
    assert code == 1 and kind is TypeError and "matrix" in message
    assert _local_problem(np.zeros(4), None, True, None)[0] == 0
