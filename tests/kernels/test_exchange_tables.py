"""The all-to-all and ring-pass step tables: what every rank holds after each step."""

import pytest

from ringpipe.kernels.exchange import (
    all_to_all_chunk,
    pairwise_all_to_all,
    ring_pass,
    ring_pass_block,
)
from ringpipe.kernels.registry import step_table


@pytest.mark.parametrize("n", range(1, 10))
def test_pairwise_all_to_all_delivers_every_block_once(n):
    table = pairwise_all_to_all(n)
    assert step_table("all_to_all", "pairwise", n) is table
    assert table.nsteps == max(n - 1, 0) and len(table) == n * (n - 1)
    # symbolic run: rank r starts holding only its row of blocks
    start = [[frozenset({(r, c)}) if c // n == r else frozenset() for c in range(n * n)]
             for r in range(n)]
    end = table.contributions(start)
    for r in range(n):
        for i in range(n):
            assert end[r][all_to_all_chunk(i, r, n)] == frozenset({(i, all_to_all_chunk(i, r, n))})
    for step in table.steps():  # one message out of and into each rank per step
        assert sorted(t.src for t in step) == list(range(n))
        assert sorted(t.dst for t in step) == list(range(n))
    sent = table.bytes_sent(n * n * 8, 4)  # 8 elements per block
    assert list(sent) == [(n - 1) * 8 * 4] * n  # (N-1)/N of the S = n·8·4 bytes


@pytest.mark.parametrize("n", range(1, 8))
@pytest.mark.parametrize("extra", [0, 1])
def test_ring_pass_shows_every_block_and_brings_it_home(n, extra):
    steps = n - 1 + extra if n > 1 else 0
    table = ring_pass(n, steps)
    holds = list(range(n))  # the block each rank holds
    seen = [{r} for r in range(n)]
    for s, transfers in enumerate(table.steps()):
        assert len(transfers) == n
        moved = list(holds)
        for t in transfers:
            assert t.dst == (t.src + 1) % n and t.chunk == holds[t.src]
            assert t.chunk == ring_pass_block(t.src, s, n)
            moved[t.dst] = holds[t.src]
        holds = moved
        for r in range(n):
            seen[r].add(holds[r])
    assert all(s == set(range(n)) for s in seen)
    if extra:
        assert holds == list(range(n))  # the last hop returns every block to its owner


def test_ring_pass_refuses_more_steps_than_ranks():
    with pytest.raises(ValueError, match="steps"):
        ring_pass(3, 4)
