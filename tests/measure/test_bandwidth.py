"""nccl-tests table layout and the timed all-reduce (in place and out of place)."""

import pytest

from ringpipe.measure.bandwidth import BandwidthRow, format_table, time_all_reduce


def _row(size, in_place, busbw, wrong=0):
    return BandwidthRow(size, size // 4, "float32", "sum", "ring", 10.0, busbw / 2, busbw,
                        wrong, in_place)


def test_table_follows_nccl_tests_layout():
    rows = [_row(1024, False, 1.0), _row(1024, True, 2.0), _row(4096, False, 3.0),
            _row(4096, True, 6.0)]
    lines = format_table(rows).splitlines()
    header = [line for line in lines if line.startswith("#")]
    body = [line for line in lines if not line.startswith("#")]
    assert "out-of-place" in header[0] and "in-place" in header[0]
    assert header[0].index("out-of-place") < header[0].index("in-place")
    assert header[1].split() == ["#", "size", "count", "type", "redop", "root", "time",
                                 "algbw", "busbw", "#wrong", "time", "algbw", "busbw",
                                 "#wrong"]
    assert [line.split()[:5] for line in body] == [["1024", "256", "float", "sum", "-1"],
                                                   ["4096", "1024", "float", "sum", "-1"]]
    assert body[1].split()[5:] == ["10.0", "1.50", "3.00", "0", "10.0", "3.00", "6.00", "0"]
    assert lines[-2] == "# Out of bounds values : 0 OK"
    assert lines[-1] == "# Avg bus bandwidth    : 3"  # (1 + 2 + 3 + 6) / 4


def test_missing_measurements_and_wrong_results_are_shown():
    lines = format_table([_row(64, True, 1.0, wrong=3)]).splitlines()
    assert lines[3].split()[5:9] == ["n/a"] * 4
    assert lines[-2] == "# Out of bounds values : 3 FAILED"


@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_timed_all_reduce_is_exact_both_ways(in_place, backend):
    row = time_all_reduce(3, 4096, "ring", backend=backend, iters=1, in_place=in_place)
    assert row.wrong == 0 and row.in_place is in_place and row.count == 1024
    assert row.busbw_gbps == pytest.approx(row.algbw_gbps * 4 / 3)


def test_sweep_sizes_must_be_whole_elements():
    with pytest.raises(ValueError, match="not a positive multiple"):
        time_all_reduce(2, 5, "ring")
    with pytest.raises(ValueError, match="not a positive multiple"):
        time_all_reduce(2, 2, "ring")
