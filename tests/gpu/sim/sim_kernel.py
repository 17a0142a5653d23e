"""The CUDA step-table kernel under the simulator, bitwise against the NumPy reference.

Every table of the registry (each collective, algorithm and root) for N in 1..5, sizes
0, below N, primes and multi-tile sizes, every dtype and op, in place and out of place,
with tunings patched small so that one call spans many blocks, many tiles per chunk,
partial per-thread element groups and the grid-stride loop.
"""

import warnings

import numpy as np
import pytest

from ringpipe.kernels.cuda.executor import MAX_RANKS, launch_shape, run_table_cuda
from ringpipe.kernels.cuda.tuning import CudaTuning
from ringpipe.kernels.numpy_exec import run_table_numpy
from ringpipe.kernels.registry import ALGORITHMS, ROOTED, step_table

DTYPES = [np.float16, np.float32, np.float64, np.int32, np.int64]
OPS = ["sum", "max", "min"]
SIZES = [0, 1, 2, 4, 7, 13, 31]
# Tiny blocks and tiles: 31 elements over 5 ranks already need several blocks per chunk.
SMALL = CudaTuning(threads_per_block=2, elems_per_thread=2, tile_elems=6, max_blocks=3)
ODD = CudaTuning(threads_per_block=3, elems_per_thread=3, tile_elems=5, max_blocks=64)


def tables(n):
    for collective, algorithms in ALGORITHMS.items():
        for algorithm in algorithms:
            roots = range(n) if collective in ROOTED else [0]
            for root in sorted({roots[0], roots[-1]}):
                yield step_table(collective, algorithm, n, root=root)


def inputs(seed, n, size, dtype, integers=True):
    rng = np.random.default_rng(seed)
    if integers or np.dtype(dtype).kind == "i":
        return [rng.integers(-8, 9, size).astype(dtype) for _ in range(n)]
    return [rng.standard_normal(size).astype(dtype) * 4 for _ in range(n)]


def reference(table, xs, op):
    got = [x.copy() for x in xs]
    with np.errstate(all="ignore"):
        run_table_numpy(table, got, op)
    return got


def simulated(table, xs, op, tuning, out_of_place=False):
    if out_of_place:
        outs = [np.full_like(x, 7) for x in xs]
        frozen = [x.copy() for x in xs]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NumPy scalar overflow in sim
            run_table_cuda(table, outs, op, inputs=xs, tuning=tuning)
        assert all(x.tobytes() == f.tobytes() for x, f in zip(xs, frozen, strict=True))
        return outs
    got = [x.copy() for x in xs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        run_table_cuda(table, got, op, tuning=tuning)
    return got


def assert_bitwise(got, want, what):
    for r, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert g.tobytes() == w.tobytes(), f"{what}: rank {r}: {g!r} != {w!r}"


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_table_every_op_bitwise(n, dtype):
    for table in tables(n):
        for size in SIZES:
            for op in OPS:
                xs = inputs(size * 31 + n, n, size, dtype)
                what = f"{table.name} n={n} size={size} {np.dtype(dtype)} {op}"
                want = reference(table, xs, op)
                assert_bitwise(simulated(table, xs, op, SMALL), want, what)


@pytest.mark.parametrize("algorithm", ["ring", "tree"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("n", [3, 4, 5])
def test_random_floats_keep_the_reference_order(algorithm, dtype, n):
    # Non-integer values: any change of reduction order changes the low bits.
    table = step_table("all_reduce", algorithm, n)
    for size, tuning in [(37, SMALL), (41, ODD)]:
        xs = inputs(size + n, n, size, dtype, integers=False)
        want = reference(table, xs, "sum")
        assert_bitwise(simulated(table, xs, "sum", tuning), want, f"{algorithm} {size}")
        assert any(w.tobytes() != want[0].tobytes() for w in xs), "inputs too trivial"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_out_of_place_copies_inputs_in_the_same_pass(dtype, op):
    for n in (1, 3, 4):
        for table in tables(n):
            xs = inputs(n, n, 11, dtype)
            want = reference(table, xs, op)
            got = simulated(table, xs, op, SMALL, out_of_place=True)
            assert_bitwise(got, want, f"{table.name} n={n} out of place")


def assert_bitwise_but_nan_payloads(got, want, what):
    """Bitwise, except that a NaN may carry any sign and payload where want has a NaN."""
    for r, (g, w) in enumerate(zip(got, want, strict=True)):
        assert np.array_equal(np.isnan(g), np.isnan(w)), f"{what}: rank {r}: NaN positions"
        keep = ~np.isnan(w)
        assert g[keep].tobytes() == w[keep].tobytes(), f"{what}: rank {r}: {g!r} != {w!r}"


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("op", OPS)
def test_nan_inf_and_signed_zero(dtype, op):
    """max/min copy bits and float16 sums are emulated exactly: bitwise, NaNs included.

    A float32/float64 sum with a NaN operand takes its NaN's sign and payload from the
    hardware (IEEE 754 leaves them open; x86 and NumPy's array and scalar loops differ,
    GPUs return a canonical NaN), so there only the NaN positions must agree.
    """
    specials = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -2.0,
                         np.finfo(dtype).max, np.finfo(dtype).tiny], dtype=dtype)
    n = 4
    rng = np.random.default_rng(0)
    xs = [rng.permutation(np.tile(specials, 3)) for _ in range(n)]
    for algorithm in ("ring", "tree"):
        table = step_table("all_reduce", algorithm, n)
        want = reference(table, xs, op)
        check = (assert_bitwise_but_nan_payloads if op == "sum" and dtype != np.float16
                 else assert_bitwise)
        check(simulated(table, xs, op, SMALL), want, f"{algorithm} specials")


def test_float16_nan_payloads_overflow_and_subnormals():
    bits = np.array([0x7D01, 0xFE05, 0x7C00, 0xFC00, 0x7BFF, 0x7BFF, 0x0001, 0x8001, 0x03FF,
                     0x0400, 0x3C00, 0xBC00], dtype=np.uint16)
    xs = [np.roll(bits, r).view(np.float16) for r in range(3)]
    table = step_table("all_reduce", "ring", 3)
    for op in OPS:
        want = reference(table, xs, op)
        assert_bitwise(simulated(table, xs, op, SMALL), want, f"float16 {op}")


def test_int32_sums_wrap_like_numpy():
    xs = [np.full(9, 2**30 + r, np.int32) for r in range(3)]  # sum 3·2**30 + 3 wraps
    table = step_table("all_reduce", "tree", 3)
    want = reference(table, xs, "sum")
    assert want[0][0] < 0  # the reference wrapped
    assert_bitwise(simulated(table, xs, "sum", SMALL), want, "int32 wrap")


def test_small_tuning_takes_the_multi_block_and_grid_stride_paths():
    shape = launch_shape(31, 5, SMALL)
    assert shape.tiles_per_chunk == 2 and shape.items == 10
    assert shape.blocks == 3 < shape.items  # blocks loop over items
    # A block takes a tile in rounds of threads·elems_per_thread elements, the last partial.
    assert SMALL.tile_elems % (SMALL.threads_per_block * SMALL.elems_per_thread) != 0
    assert SMALL.tile_elems > SMALL.threads_per_block * SMALL.elems_per_thread
    odd = launch_shape(41, 3, ODD)
    assert odd.blocks == odd.items == 9 > 1
    assert ODD.threads_per_block * ODD.elems_per_thread > ODD.tile_elems  # idle slots
    assert launch_shape(0, 4, SMALL).items == 4  # empty chunks still form a grid


def test_default_tuning_one_item_per_chunk_when_it_fits():
    shape = launch_shape(1000, 8, CudaTuning())
    assert (shape.tiles_per_chunk, shape.items, shape.threads) == (1, 8, 256)


def test_too_many_ranks():
    n = MAX_RANKS + 1
    table = step_table("all_reduce", "ring", n)
    xs = [np.ones(3, np.float32) for _ in range(n)]
    with pytest.raises(ValueError, match=f"at most {MAX_RANKS} ranks"):
        run_table_cuda(table, xs, "sum")
    assert all((x == 1).all() for x in xs)
