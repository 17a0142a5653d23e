"""Schedule pipeline throughput: generate, add SEND/RECV, validate, simulate.

Target (issue 16): 1F1B at p=64, m=1024 in under 0.3 s on a 2-core machine, with
the default validation (isend dry run, then the batched blocking-send dry run).
The path is array-native: generators emit arrays, the communication pass merges
arrays, validate and simulate read them; Action objects are never built.
The sweep over p*m shows the cost is linear: ``extra_info["us_per_pm"]``
(microseconds per unit of p*m) stays flat as p*m grows 64-fold. Baselines in the
same run: generation alone, and the pipeline validated with the isend dry run
only, so the share of the checks and of the blocking-send model is visible.
ZB-V (2 chunks per rank, 6 actions per micro-batch per rank: 3x 1F1B's) is
reported at the same p and m.

Run: ``.venv/bin/python -m pytest benchmarks/bench_schedules.py --benchmark-only``
"""

from fractions import Fraction

import pytest

from ringpipe.schedules import CostModel, add_communication, one_f_one_b, simulate, validate, zb_v


def pipeline(p, m, sends="batched", generator=one_f_one_b, costs=None):
    lowered = add_communication(generator(p, m))
    return simulate(lowered, costs, execution_order=validate(lowered, sends))


@pytest.fixture(scope="module", autouse=True)
def _compile_once():
    pipeline(2, 2)  # Numba compilation (cached on disk) stays out of the timings


def test_generate_only_p64_m1024(benchmark):
    schedule = benchmark.pedantic(one_f_one_b, args=(64, 1024), rounds=5, iterations=1)
    benchmark.extra_info.update(p=64, m=1024, actions=sum(map(len, schedule.actions)))


def test_full_pipeline_p64_m1024(benchmark):
    result = benchmark.pedantic(pipeline, args=(64, 1024), rounds=5, iterations=1)
    assert result.bubble_fraction == pytest.approx(63 / 1087)
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        p=64, m=1024, seconds=mean, target_seconds=0.3, us_per_pm=mean * 1e6 / (64 * 1024)
    )


def test_isend_only_pipeline_p64_m1024(benchmark):
    result = benchmark.pedantic(pipeline, args=(64, 1024, "isend"), rounds=5, iterations=1)
    assert result.bubble_fraction == pytest.approx(63 / 1087)
    benchmark.extra_info.update(p=64, m=1024, seconds=benchmark.stats.stats.mean)


def test_zb_v_pipeline_p64_m1024(benchmark):
    half = Fraction(1, 2)
    costs = CostModel(forward=half, backward_input=half, backward_weight=half)
    result = benchmark.pedantic(
        pipeline, args=(64, 1024, "batched", zb_v, costs), rounds=3, iterations=1
    )
    assert result.bubble_fraction == Fraction(63, 6 * 1024 + 63)
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update(p=64, m=1024, seconds=mean, us_per_pm=mean * 1e6 / (64 * 1024))


@pytest.mark.parametrize(("p", "m"), [(8, 128), (16, 256), (32, 512), (64, 1024)])
def test_sweep_p_times_m(benchmark, p, m):
    benchmark.pedantic(pipeline, args=(p, m), rounds=3, iterations=1)
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update(p=p, m=m, pm=p * m, seconds=mean, us_per_pm=mean * 1e6 / (p * m))
