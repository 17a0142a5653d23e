"""Schedule pipeline throughput: generate 1F1B, add SEND/RECV, validate, simulate.

Target (issue 3): p=64, m=1024 in under 1 s on a 2-core machine. The sweep over
p*m shows the cost is linear: ``extra_info["us_per_pm"]`` (microseconds per unit
of p*m) stays flat as p*m grows 64-fold. Baseline in the same run: generation
alone, so the share of the checks is visible.

Run: ``.venv/bin/python -m pytest benchmarks/bench_schedules.py --benchmark-only``
"""

import pytest

from ringpipe.schedules import add_communication, one_f_one_b, simulate, validate


def pipeline(p, m):
    lowered = add_communication(one_f_one_b(p, m))
    return simulate(lowered, execution_order=validate(lowered))


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
        p=64, m=1024, seconds=mean, target_seconds=1.0, us_per_pm=mean * 1e6 / (64 * 1024)
    )


@pytest.mark.parametrize(("p", "m"), [(8, 128), (16, 256), (32, 512), (64, 1024)])
def test_sweep_p_times_m(benchmark, p, m):
    benchmark.pedantic(pipeline, args=(p, m), rounds=3, iterations=1)
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update(p=p, m=m, pm=p * m, seconds=mean, us_per_pm=mean * 1e6 / (p * m))
