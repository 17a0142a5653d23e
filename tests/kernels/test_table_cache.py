"""Ring tables built as columns, the bounded table cache, and the size refusal."""

import numpy as np
import pytest

import ringpipe
from ringpipe.kernels import ops, table_cache
from ringpipe.kernels.numpy_exec import REDUCE_UFUNCS
from ringpipe.kernels.ring import ring_all_gather, ring_all_reduce, ring_reduce_scatter
from ringpipe.kernels.steps import StepTable, Transfer
from ringpipe.kernels.tree import tree_all_reduce


def textbook_ring(n):
    """The ring all-reduce rows written out one by one (Patarasuk and Yuan)."""
    rows = [Transfer(s, r, (r + 1) % n, (r - s - 1) % n, True)
            for s in range(n - 1) for r in range(n)]
    rows += [Transfer(n - 1 + s, r, (r + 1) % n, (r - s) % n, False)
             for s in range(n - 1) for r in range(n)]
    return rows


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16])
def test_column_built_ring_equals_the_row_by_row_table(n):
    assert list(ring_all_reduce(n)) == textbook_ring(n)
    half = n * (n - 1)
    assert list(ring_reduce_scatter(n)) == textbook_ring(n)[:half]
    gather = [t._replace(step=t.step - (n - 1)) for t in textbook_ring(n)[half:]]
    assert list(ring_all_gather(n)) == gather


def test_tables_are_cached_and_frozen():
    assert ring_all_reduce(12) is ring_all_reduce(12)
    assert tree_all_reduce(12, 3) is tree_all_reduce(12, 3)
    with pytest.raises(ValueError):
        ring_all_reduce(12).src[0] = 5


def test_large_tables_keep_only_the_latest():
    first = ring_all_reduce(200)  # 79,600 transfers: the one-entry large pool
    assert ring_all_reduce(200) is first
    ring_all_reduce(201)
    assert ring_all_reduce(200) is not first  # evicted, built again


def test_absurd_rank_counts_are_refused_before_building():
    with pytest.raises(ValueError, match=r"17,994,000 transfers.*limit of 4,194,304.*tree"):
        ring_all_reduce(3000)
    bufs = [np.zeros(1, np.float32) for _ in range(1449)]
    with pytest.raises(ValueError, match="limit"):
        ringpipe.all_reduce(bufs, "ring", "numpy")
    assert len(tree_all_reduce(3000)) == 4 * 2999  # the tree stays O(N)


def test_bad_rank_counts_name_the_argument():
    with pytest.raises(TypeError, match="nranks must be an int"):
        ring_all_reduce(2.0)
    with pytest.raises(ValueError, match="nranks must be >= 1"):
        tree_all_reduce(0)


def test_vectorized_check_reports_the_first_conflict_in_table_order():
    rows = [Transfer(0, 2, 3, 1, True), Transfer(0, 0, 1, 0, True), Transfer(0, 1, 2, 0, True)]
    with pytest.raises(ValueError, match="step 0: rank 1 chunk 0 is both sent and received"):
        StepTable.from_transfers("bad", "all_reduce", 4, 2, rows)
    rows = [Transfer(0, 0, 2, 0, True), Transfer(0, 1, 2, 0, True), Transfer(0, 3, 2, 0, False)]
    with pytest.raises(ValueError, match="rank 2 chunk 0 is written twice"):
        StepTable.from_transfers("bad", "all_reduce", 4, 1, rows)
    ok = [Transfer(0, 0, 2, 0, True), Transfer(0, 1, 2, 0, True)]
    assert len(StepTable.from_transfers("ok", "all_reduce", 3, 1, ok)) == 2


def test_one_op_table_feeds_every_executor():
    assert ringpipe.collectives.checks.SUPPORTED_OPS == ops.SUPPORTED_OPS == tuple(REDUCE_UFUNCS)
    from ringpipe.kernels import numba_exec
    assert numba_exec.OPCODES is ops.OPCODES
    assert sorted(ops.OPCODES.values()) == list(range(len(ops.REDUCTION_OPS)))
    assert table_cache.MAX_TRANSFERS >= 2 * 1024 * 1023  # 1024 ring ranks still fit
