"""The all-to-all's nccl-tests row: busbw = algbw·(N-1)/N and no wrong element."""

import numpy as np
import pytest

from ringpipe.measure.all_to_all import all_to_all_vs_transpose, block_transpose, time_all_to_all
from ringpipe.measure.bandwidth import busbw_factor, format_table


def test_row_accounts_like_nccl_tests():
    row = time_all_to_all(4, 4 * 4 * 64, backend="numpy", iters=2)
    assert row.wrong == 0 and row.count == 4 * 64 and row.size_bytes == 4 * 4 * 64
    assert row.busbw_gbps == pytest.approx(row.algbw_gbps * 3 / 4)
    assert busbw_factor("all_to_all", 8) == 7 / 8
    assert "# Out of bounds values : 0 OK" in format_table([row])


def test_ratio_row_and_its_baseline():
    r = all_to_all_vs_transpose(3, 3 * 4 * 100, rounds=2)
    assert r.wrong == 0 and r.ratio > 0 and r.busbw_gbps > 0
    xs = [np.arange(6, dtype=np.float32) + 10 * k for k in range(3)]
    out = [np.empty_like(x) for x in xs]
    block_transpose(xs, out)
    assert out[1].tolist() == [2, 3, 12, 13, 22, 23]


def test_sizes_the_ranks_do_not_divide_are_refused():
    with pytest.raises(ValueError, match="not a positive multiple of 3 ranks"):
        time_all_to_all(3, 4 * 4)
