"""Megatron-LM SC'21 Table 1: every row predicted within 15%, one calibrated constant."""

import dataclasses

import pytest

from ringpipe.cost.cluster import CALIBRATED_FRACTION_OF_PEAK, cluster_preset
from ringpipe.cost.megatron_table import TABLE_1, compare, format_markdown
from ringpipe.cost.models import executed_flops


@pytest.fixture(scope="module")
def comparisons():
    return compare()


def test_every_row_is_within_15_percent(comparisons):
    assert len(comparisons) == 10
    errors = {c.row.name: round(c.error * 100, 1) for c in comparisons}
    assert all(abs(e) < 15 for e in errors.values()), errors


def test_every_published_configuration_fits_80gb(comparisons):
    assert all(c.prediction.fits for c in comparisons)


def test_flops_are_counted_as_the_paper_counts_them():
    for row in TABLE_1:
        assert executed_flops(row.model(), row.batch, "full") == \
            pytest.approx(row.paper_flops(), rel=1e-12)


def test_the_stored_constant_is_the_least_squares_fit(comparisons):
    def loss(frac):
        c = dataclasses.replace(cluster_preset("dgx-a100"), achievable_fraction=frac)
        return sum(cmp.error ** 2 for cmp in compare(c))

    at = sum(c.error ** 2 for c in comparisons)
    assert at < loss(CALIBRATED_FRACTION_OF_PEAK - 0.01)
    assert at < loss(CALIBRATED_FRACTION_OF_PEAK + 0.01)


def test_published_configurations_are_the_launch_scripts(comparisons):
    rows = {r.name: r for r in TABLE_1}
    assert (rows["1008.0B"].dp, rows["529.6B"].chunks, rows["76.1B"].chunks) == (6, 3, 3)
    assert {c.prediction.num_microbatches for c in comparisons} >= {1, 28, 280, 512}
    table = format_markdown(comparisons)
    assert table.count("\n") == 11 and "| 1.7B | 1 | 1 | 32 | 32 | 512 |" in table
