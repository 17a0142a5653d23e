"""The MPI engine's compiled per-rank programs, executed by a message simulator (no MPI).

Pipelining in segments must never change an element's reduction order: for every
table, size and segment length, running all ranks' programs tick by tick -- messages
between a pair of ranks matched in posting order, as MPI's non-overtaking rule does --
gives the NumPy reference executor's bytes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringpipe.kernels.numpy_exec import REDUCE_UFUNCS, run_table_numpy
from ringpipe.kernels.registry import step_table
from ringpipe.mpi.engine import compile_table

pytestmark = pytest.mark.mpi


def simulate(programs, buffers, op):
    """Run every rank's program; sends read the buffers as they are at the tick's start."""
    ufunc = REDUCE_UFUNCS[op]
    ticks = sorted({t.index for p in programs for t in p.ticks})
    by_rank = [{t.index: t for t in p.ticks} for p in programs]
    for index in ticks:
        wire: dict[tuple[int, int], list[np.ndarray]] = {}
        for rank, prog in enumerate(by_rank):
            for m in prog[index].sends if index in prog else ():
                wire.setdefault((rank, m.peer), []).append(buffers[rank][m.lo:m.hi].copy())
        for rank, prog in enumerate(by_rank):
            for m in prog[index].recvs if index in prog else ():
                data = wire[(m.peer, rank)].pop(0)
                assert data.size == m.hi - m.lo
                dst = buffers[rank][m.lo:m.hi]
                if m.reduce:
                    ufunc(dst, data, out=dst)
                else:
                    dst[...] = data
        assert all(not q for q in wire.values()), "a message was never received"


@given(n=st.integers(1, 7), count=st.integers(0, 300), seg=st.integers(0, 40),
       which=st.sampled_from([("all_reduce", "ring"), ("all_reduce", "tree"),
                              ("reduce_scatter", "ring"), ("all_gather", "ring")]),
       op=st.sampled_from(["sum", "max"]), seed=st.integers(0, 2**16))
def test_segmented_programs_match_the_reference_bitwise(n, count, seg, which, op, seed):
    table = step_table(which[0], which[1], n)
    rng = np.random.default_rng(seed)
    start = [rng.standard_normal(count).astype(np.float32) * 1e3 for _ in range(n)]
    want = [b.copy() for b in start]
    run_table_numpy(table, want, op)
    got = [b.copy() for b in start]
    simulate([compile_table(table, r, count, seg) for r in range(n)], got, op)
    assert all(g.tobytes() == w.tobytes() for g, w in zip(got, want, strict=True))


def test_segments_bound_messages_and_scratch():
    table = step_table("all_reduce", "ring", 4)
    prog = compile_table(table, 1, 4000, 100)
    sizes = [m.hi - m.lo for t in prog.ticks for m in (*t.sends, *t.recvs)]
    assert max(sizes) == 100
    assert prog.scratch_elems == 3 * 100  # the N-1 reduce-scatter steps overlap in a tick
    assert len(prog.ticks) == 2 * (4 - 1) + 1000 // 100 - 1  # 2(N-1) + K - 1 ticks
    whole = compile_table(table, 1, 4000, 0)
    assert len(whole.ticks) == 2 * 3 and whole.scratch_elems == 1000


def test_compile_rejects_bad_rank_and_count():
    table = step_table("all_reduce", "ring", 2)
    with pytest.raises(ValueError, match="rank 2 out of range"):
        compile_table(table, 2, 10, 0)
    with pytest.raises(ValueError, match="count must be >= 0"):
        compile_table(table, 0, -1, 0)
