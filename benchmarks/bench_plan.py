"""Plan runtime overhead: TP=2 × PP=4 1F1B vs the single-device reference, same run.

Run: ``python -m pytest benchmarks/bench_plan.py --benchmark-only --run-slow`` (marked
slow: skipped by a plain ``python -m pytest benchmarks --benchmark-only``)

Model: 8 blocks, hidden 512, 8 heads, seq 128, batch 16, float32; plan: TP=2 × PP=4,
1F1B, 8 micro-batches, numba backend. Both do the same FLOPs (the plan also repeats the
replicated norms and head on each TP rank), so ``ratio_to_reference`` (target <= 1.25)
is the runtime's overhead plus the collectives.

Plan and reference alternate, 5 rounds each, and both the wall-clock and the CPU-time
ratios are recorded (min and median). On a 2-core machine the wall ratio also measures
how well BLAS threads scale: the reference multiplies whole-batch matrices, the plan
micro-batch and TP-sliced ones, one rank after another in one process. The CPU-time
ratio is the work ratio, which the runtime's overhead decides.
"""

import statistics

import pytest

from ringpipe.measure.timer import wall_and_cpu
from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig, init_params, reference_forward_backward
from ringpipe.plan.training import Plan
from ringpipe.verify.training import random_batch

CONFIG = ModelConfig(layers=8, hidden=512, heads=8, seq=128, dtype="float32")
ROUNDS = 5


@pytest.fixture(scope="module")
def setup():
    params = init_params(CONFIG, 0)
    batch = random_batch(CONFIG, 16, 1)
    plan = Plan(CONFIG, Mesh(pp=4, tp=2), schedule="1f1b", microbatches=8)
    plan.run(params, batch)  # compile / load the kernel cache
    return plan, params, batch


@pytest.mark.slow  # minutes on 2 cores (hidden 512, seq 128, several runs of each side)
def test_plan_vs_reference(benchmark, setup):
    plan, params, batch = setup
    ref, run = [], []
    for _ in range(ROUNDS):  # alternate, so drifting machine load hits both alike
        ref.append(wall_and_cpu(lambda: reference_forward_backward(CONFIG, params, *batch)))
        run.append(wall_and_cpu(lambda: plan.run(params, batch)))
    benchmark.pedantic(plan.run, args=(params, batch), rounds=1, warmup_rounds=0)
    result = plan.run(params, batch)

    def ratios(i):
        mine, base = [t[i] for t in run], [t[i] for t in ref]
        return min(mine) / min(base), statistics.median(mine) / statistics.median(base)

    (wall_min, wall_med), (cpu_min, cpu_med) = ratios(0), ratios(1)
    benchmark.extra_info.update(
        ratio_to_reference=wall_min, ratio_to_reference_median=wall_med,
        cpu_ratio_to_reference=cpu_min, cpu_ratio_to_reference_median=cpu_med,
        plan_s=min(t[0] for t in run), reference_s=min(t[0] for t in ref),
        tp_allreduce_ops=result.allreduce_ops("tp"),
        peak_activations=result.peak_activations)
    print(f"\nplan / reference, {ROUNDS} rounds: wall min {wall_min:.2f}x median "
          f"{wall_med:.2f}x; CPU time min {cpu_min:.2f}x median {cpu_med:.2f}x")
