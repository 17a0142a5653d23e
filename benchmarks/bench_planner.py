"""Planner throughput: the full search for GPT-3 175B on 64 DGX A100 nodes (512 GPUs).

Target (issue 12): the search finishes in under 10 s. Baseline measured in the same
run: pricing one configuration (the search's pick, pinned), so ``extra_info`` gives the
search time, the number of candidates priced, the cost per candidate and the ratio
search / one configuration. CPU time (``process_time``) is recorded next to wall time,
since the development machine's 2 cores are shared.

Run: ``.venv/bin/python -m pytest benchmarks/bench_planner.py --benchmark-only``
or ``python benchmarks/bench_planner.py`` for a one-line summary.
"""


import pytest

from ringpipe.cost import Config, StepModel, TrainingSpec, cluster_preset, model_preset, search
from ringpipe.measure.timer import best_of, per_call, wall_and_cpu

GPT3 = model_preset("gpt3-175b")
BATCH = TrainingSpec(1536)
NODES = 64
TARGET_SECONDS = 10.0


def search_gpt3():
    return search(GPT3, BATCH, cluster_preset("dgx-a100", NODES))


def price_one(config: Config):
    model = StepModel(GPT3, TrainingSpec(1536, config.microbatch_size),
                      cluster_preset("dgx-a100", NODES))
    return model.predict(config)


def measure() -> dict:
    search(model_preset("llama2-7b"), TrainingSpec(16), cluster_preset("dgx-a100"))  # warm up
    reports = []
    wall, cpu = wall_and_cpu(lambda: reports.append(search_gpt3()))
    report = reports[0]
    one = best_of(lambda: price_one(report.best.config), 3)
    return {"nodes": NODES, "seconds": wall, "cpu_seconds": cpu,
            "target_seconds": TARGET_SECONDS, "candidates": len(report.candidates),
            "fitting": len(report.fitting), "one_config_seconds": one,
            "ratio_search_to_one": wall / one,
            "us_per_candidate": wall * 1e6 / len(report.candidates),
            "best": report.best.config.label()}


@pytest.fixture(scope="module", autouse=True)
def _compile_once():
    search(model_preset("llama2-7b"), TrainingSpec(16), cluster_preset("dgx-a100"))


def test_search_gpt3_175b_on_64_nodes(benchmark):
    report = benchmark.pedantic(search_gpt3, rounds=2, iterations=1)
    mean = benchmark.stats.stats.mean
    one = per_call(lambda: price_one(report.best.config))
    benchmark.extra_info.update(nodes=NODES, candidates=len(report.candidates),
                                fitting=len(report.fitting), seconds=mean,
                                target_seconds=TARGET_SECONDS, one_config_seconds=one,
                                ratio_search_to_one=mean / one,
                                us_per_candidate=mean * 1e6 / len(report.candidates))


if __name__ == "__main__":
    print(measure())
