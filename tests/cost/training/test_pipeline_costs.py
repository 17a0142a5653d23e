"""The pipeline part of the step comes from the schedule simulator."""

import random

import pytest

from ringpipe.cost.training.pipeline.simulator import (
    PipelineSimulator,
    StageCosts,
    _cost_model,
    sample_points,
)
from ringpipe.schedules import generate, simulate


def uniform(stages, f=1.0, i=1.0, w=1.0, msg=0.0):
    return StageCosts((f,) * stages, (i,) * stages, (w,) * stages, msg)


@pytest.mark.parametrize("p, m", [(2, 1), (4, 8), (8, 32), (4, 100), (3, 97)])
def test_uniform_1f1b_bubble_is_p_minus_1_over_m_plus_p_minus_1(p, m):
    timing = PipelineSimulator().time("1f1b", p, m, 1, uniform(p))
    assert timing.bubble_fraction == pytest.approx((p - 1) / (m + p - 1), rel=1e-12)
    assert timing.peak_in_flight == tuple(min(p - r, m) for r in range(p))


def test_uniform_interleaved_bubble_shrinks_by_v():
    p, m, v = 4, 16, 3
    timing = PipelineSimulator().time("interleaved-1f1b", p, m, v, uniform(p * v))
    assert timing.bubble_fraction == pytest.approx((p - 1) / (v * m + p - 1), rel=1e-12)


def random_costs(stages, seed):
    rng = random.Random(seed)
    return StageCosts(tuple(1 + 0.3 * rng.random() for _ in range(stages)),
                      tuple(1.1 + 0.3 * rng.random() for _ in range(stages)),
                      tuple(0.8 + 0.2 * rng.random() for _ in range(stages)), 0.05)


@pytest.mark.parametrize("name, p, m, v", [
    ("1f1b", 4, 200, 1), ("1f1b", 3, 101, 1), ("gpipe", 4, 72, 1), ("zb-h1", 4, 150, 1),
    ("interleaved-1f1b", 4, 120, 2), ("zb-v", 2, 70, 2)])
def test_long_pipelines_extrapolate_exactly(name, p, m, v):
    assert sample_points(p, m) is not None  # the extrapolated path is under test
    costs = random_costs(p * v, seed=p * m)
    got = PipelineSimulator().time(name, p, m, v, costs)
    sched = generate(name, p, m, v if name == "interleaved-1f1b" else None)
    want = simulate(sched, _cost_model(costs))
    assert got.makespan == pytest.approx(float(want.makespan), rel=1e-9)
    assert got.bubble_fraction == pytest.approx(float(want.bubble_fraction), abs=1e-9)
    assert got.peak_in_flight == want.peak_activations


def test_short_pipelines_are_simulated_whole():
    assert sample_points(8, 128) is None and sample_points(8, 129) is not None
    m0, m1, m2 = sample_points(8, 1536)
    assert m2 - m1 == m1 - m0 == 16 and (1536 - m2) % 16 == 0 and 112 < m2 <= 128


def test_bad_pipeline_arguments():
    sim = PipelineSimulator()
    with pytest.raises(ValueError, match="4 stages given, the schedule has 8"):
        sim.time("interleaved-1f1b", 4, 8, 2, uniform(4))
    with pytest.raises(ValueError, match="multiple"):
        sim.time("interleaved-1f1b", 4, 6, 2, uniform(8))
    with pytest.raises(ValueError, match="one entry per stage"):
        StageCosts((1.0,), (), (1.0,))
