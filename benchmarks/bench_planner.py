"""Planner throughput: a full search against pricing one pinned configuration.

Target (issue 6 brief): ``ringpipe plan`` for gpt3-175b on 4 DGX A100 nodes within a
few seconds on a 2-core machine. Baseline in the same run: pricing the single pinned
configuration the search picks (tp 8, pp 8, interleaved v6), so
``extra_info["candidates"]`` and ``us_per_candidate`` show what the search costs per
configuration priced. The 8-node search is the one where 84+ configurations fit.

Run: ``.venv/bin/python -m pytest benchmarks/bench_planner.py --benchmark-only``
"""

import pytest

from ringpipe.cost import (
    Config,
    FitsNowhere,
    StepModel,
    TrainingSpec,
    cluster_preset,
    model_preset,
    plan,
)

GPT3 = model_preset("gpt3-175b")
BATCH = TrainingSpec(1536)


@pytest.fixture(scope="module", autouse=True)
def _compile_once():
    plan(model_preset("llama2-7b"), TrainingSpec(16), cluster_preset("dgx-a100"))


def search(nodes):
    try:
        return plan(GPT3, BATCH, cluster_preset("dgx-a100", nodes))
    except FitsNowhere as exc:  # 175B needs more than 32 x 80 GB for its 16 B/param
        return exc.report


@pytest.mark.parametrize("nodes", [4, 8])
def test_search_gpt3_175b(benchmark, nodes):
    report = benchmark.pedantic(search, args=(nodes,), rounds=3, iterations=1)
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update(nodes=nodes, candidates=len(report.candidates),
                                fitting=len(report.fitting), seconds=mean,
                                target_seconds=3.0,
                                us_per_candidate=mean * 1e6 / len(report.candidates))


def test_baseline_one_pinned_configuration(benchmark):
    def once():
        model = StepModel(GPT3, TrainingSpec(1536, 1, recompute="selective"),
                          cluster_preset("dgx-a100", 8))
        return model.predict(Config(8, 8, 1, "interleaved-1f1b", 1, 6, "selective"))

    pred = benchmark.pedantic(once, rounds=5, iterations=1)
    assert pred.fits
    benchmark.extra_info.update(seconds=benchmark.stats.stats.mean,
                                tflops_per_gpu=pred.tflops_per_gpu)
