"""Megatron-LM SC'21 Table 1: every row predicted within 15%, one calibrated constant."""


import pytest

from ringpipe.cost.hardware.cluster import CALIBRATED_FRACTION_OF_PEAK, cluster_preset
from ringpipe.cost.hardware.gpu import CALIBRATED_SATURATION
from ringpipe.cost.published.megatron import TABLE_1, compare, format_markdown, loss, with_constants
from ringpipe.cost.training.spec import executed_flops


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


def test_the_stored_constants_are_the_least_squares_fit(comparisons):
    """η_max and d0 are a local optimum of the squared relative error on Table 1."""
    base = cluster_preset("dgx-a100")
    eta, d0 = CALIBRATED_FRACTION_OF_PEAK, CALIBRATED_SATURATION
    at = sum(c.error ** 2 for c in comparisons)
    assert at == pytest.approx(loss(with_constants(base, eta, d0)))
    for e, d in ((eta - 0.01, d0), (eta + 0.01, d0), (eta, d0 - 32), (eta, d0 + 32)):
        assert at < loss(with_constants(base, e, d)), (e, d)
    # the saturation term halves the in-sample RMS error (refitted eta_max with d0 = 0)
    plain = with_constants(base, 0.66, 0.0)
    assert loss(plain) > 2 * at


def test_published_configurations_are_the_launch_scripts(comparisons):
    rows = {r.name: r for r in TABLE_1}
    assert (rows["1008.0B"].dp, rows["529.6B"].chunks, rows["76.1B"].chunks) == (6, 3, 3)
    assert {c.prediction.num_microbatches for c in comparisons} >= {1, 28, 280, 512}
    table = format_markdown(comparisons)
    assert table.count("\n") == 11 and "| 1.7B | 1 | 1 | 32 | 32 | 512 |" in table
