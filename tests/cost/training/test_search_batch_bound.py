"""``ringpipe plan --global-batch`` does not grow the search: the pipeline simulator never
builds a schedule larger than ``max_schedule_cells`` (p·v·m cells), whatever the batch;
a pipeline that cannot be priced within that is refused naming the limit (exit 2), and
the memo of simulated schedules stays under the limit too."""

from __future__ import annotations

import pytest

import ringpipe.cost.training.pipeline.simulator as pipeline
from ringpipe.cli import main
from ringpipe.cost.training.pipeline.simulator import (
    PipelineSimulator,
    PricingLimit,
    StageCosts,
    _cost_model,
    sample_windows,
)
from ringpipe.limits import Limits
from ringpipe.schedules import generate, simulate

PLAN = ["plan", "--model", "gpt3-175b", "--cluster", "dgx-a100", "--nodes", "8", "--top",
        "1", "--json"]


@pytest.fixture
def built(monkeypatch):
    """Every (name, p, m, v) whose schedule the pricing builds."""
    sizes: list[tuple[str, int, int, int]] = []
    real = pipeline.generate

    def recording(name, p, m, v=None):
        sizes.append((name, p, m, v or 1))
        return real(name, p, m, v)

    monkeypatch.setattr(pipeline, "generate", recording)
    return sizes


@pytest.mark.slow
def test_a_huge_global_batch_builds_no_schedule_larger_than_a_small_one(built, capsys):
    assert main([*PLAN, "--global-batch", "1536"]) == 0
    small = max(p * v * m for _, p, m, v in built)
    built.clear()
    assert main([*PLAN, "--global-batch", str(10**9)]) == 0  # 10^7 took 2.2 GB before
    huge = max(p * v * m for _, p, m, v in built)
    assert huge <= Limits().max_schedule_cells
    assert huge <= 4 * max(small, 16 * 64 * 8)  # the sampling windows, not m
    capsys.readouterr()


def test_a_pipeline_that_cannot_be_priced_within_the_limit_is_refused(capsys, monkeypatch):
    monkeypatch.setenv("RINGPIPE_LIMITS", "max_schedule_cells=300")
    assert main([*PLAN, "--global-batch", str(10**9)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "max_schedule_cells=300" in err and "Traceback" not in err


def test_a_late_steady_state_is_found_in_a_later_window():
    """ZB-V with uneven stages settles after 15p micro-batches: the first window
    disagrees, the second agrees; the answer is the whole simulation's."""
    p, v, m = 4, 2, 312_500
    costs = StageCosts((0.1257, *(0.12555,) * 6, 0.12893),
                       (0.25530, *(0.25529,) * 6, 0.25880),
                       (0.103807, *(0.103807,) * 6, 0.106756), 0.000509)
    windows = sample_windows(p, m)
    assert len(windows) >= 2 and windows[0][2] <= 16 * p < windows[1][2] <= 32 * p
    sim = PipelineSimulator()
    first = [sim._makespan("zb-v", p, x, v, _cost_model(costs)) for x in windows[0]]
    assert not pipeline._agree(first[2] - first[1], first[1] - first[0])  # too early
    got = sim.time("zb-v", p, m, v, costs)
    # the exact makespan, from a whole simulation of a count with m's residue and the
    # same steady increment per 2p micro-batches
    small = 160 + (m - 160) % (2 * p)
    whole = simulate(generate("zb-v", p, small, None), _cost_model(costs)).makespan
    step = sim.time("zb-v", p, small + 2 * p, v, costs).makespan - float(whole)
    assert got.makespan == pytest.approx(float(whole) + (m - small) / (2 * p) * step,
                                         rel=1e-9)
    assert max(p * v * x for x in [w[2] for w in windows]) < p * v * m


def test_the_memo_keeps_at_most_the_limit(built):
    sim = PipelineSimulator(Limits(max_schedule_cells=2000))
    for m in range(8, 120, 8):
        sim.order("1f1b", 4, m, 1)
    assert sum(sim._cells.values()) <= 2000
    assert len(sim._orders) < len(built)  # the oldest were dropped
    with pytest.raises(PricingLimit, match="max_schedule_cells=2000"):
        sim.order("1f1b", 4, 1000, 1)
