"""Plan runtime overhead: TP=2 × PP=4 1F1B vs the single-device reference, same run.

Run: ``python -m pytest benchmarks/bench_plan.py --benchmark-only --run-slow`` (marked
slow: skipped by a plain ``python -m pytest benchmarks --benchmark-only``)

Model: 8 blocks, hidden 512, 8 heads, seq 128, batch 16, float32; plan: TP=2 × PP=4,
1F1B, 8 micro-batches, numba backend. Both do the same FLOPs, so
``ratio_to_reference`` (target <= 1.5) is the runtime's overhead plus the collectives.
"""

import pytest
from timing import best_time

from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig, init_params, reference_forward_backward
from ringpipe.plan import Plan
from ringpipe.verify import random_batch

CONFIG = ModelConfig(layers=8, hidden=512, heads=8, seq=128, dtype="float32")


@pytest.fixture(scope="module")
def setup():
    params = init_params(CONFIG, 0)
    batch = random_batch(CONFIG, 16, 1)
    plan = Plan(CONFIG, Mesh(pp=4, tp=2), schedule="1f1b", microbatches=8)
    plan.run(params, batch)  # compile / load the kernel cache
    return plan, params, batch



@pytest.mark.slow  # minutes on 2 cores (hidden 512, seq 128: ten runs of each side)
def test_plan_vs_reference(benchmark, setup):
    plan, params, batch = setup
    reference = best_time(lambda: reference_forward_backward(CONFIG, params, *batch), 3)
    benchmark.pedantic(plan.run, args=(params, batch), rounds=3, warmup_rounds=0)
    reference = min(reference,
                    best_time(lambda: reference_forward_backward(CONFIG, params, *batch), 2))
    t = benchmark.stats.stats.min
    result = plan.run(params, batch)
    benchmark.extra_info.update(
        ratio_to_reference=t / reference, plan_s=t, reference_s=reference,
        tp_allreduce_ops=result.allreduce_ops("tp"),
        peak_activations=result.peak_activations)
