"""Held-out published measurements: the numbers docs/planner.md reports, reproduced."""

import pytest

from ringpipe.cost.published.training_runs import BLOOM_SPLITS, KORTHIKANTI
from ringpipe.cost.published.validate import (
    bloom_rank_correlation,
    check,
    llama3,
    mae,
    report,
    spearman,
)


def test_spearman_matches_hand_ranks():
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1, 2.5, 2.5) vs (1, 2, 3): Pearson of the ranks
    assert spearman([1, 5, 5], [1, 2, 3]) == pytest.approx(0.8660254, rel=1e-6)


@pytest.fixture(scope="module")
def bloom():
    return check(BLOOM_SPLITS)


def test_bloom_memory_verdicts_and_errors(bloom):
    assert all(c.memory_agrees for c in bloom)  # the three OOM splits predicted not to fit
    assert sum(c.run.step_s is None for c in bloom) == 3
    assert mae(bloom) < 0.15  # 10.6% when written (docs/planner.md)
    assert -1 <= bloom_rank_correlation(bloom) <= 1


def test_korthikanti_recipes_order_and_error():
    kort = check(KORTHIKANTI)
    for full, selective in zip(kort[::2], kort[1::2], strict=True):
        assert selective.prediction.step_time < full.prediction.step_time
        assert selective.prediction.memory.activations > full.prediction.memory.activations
    assert mae(kort) < 0.20


def test_llama3_405b_production_layout_fits_under_the_default_recipe():
    rows = llama3()
    for run, pred, published in rows:
        c = pred.config
        assert (c.tp, c.pp, c.dp, c.microbatch_size) == (8, 16, run.dp, 1) and pred.fits
        assert pred.model_tflops_per_gpu > 0.5 * published
    text = report()
    assert "Llama 3 405B" in text and "Spearman" in text and "MAE" in text
