"""Planner pricing: real per-replica batches, a throughput search that sweeps batches
whatever --batch says, explanations worded for the layouts compared."""

import pytest

from ringpipe.cost import cluster_preset, model_preset
from ringpipe.cost.inference.model import InferenceModel
from ringpipe.cost.inference.search import batch_sweep, kind, search
from ringpipe.cost.inference.workload import Workload
from ringpipe.mesh import Mesh

MODEL, CLUSTER = model_preset("llama3-8b"), cluster_preset("dgx-h100")


def rate(batch):
    return InferenceModel(MODEL, CLUSTER).predict(Mesh(tp=1, pp=1, dp=8), Workload(128, 128, batch))


def test_uneven_batches_are_not_priced_as_full_replicas():
    # 9 sequences on 8 replicas: the busy time of batch 16, but only 9 sequences' tokens
    assert rate(9).tpot_s == pytest.approx(rate(16).tpot_s)
    assert rate(9).tokens_per_s_per_gpu == pytest.approx(rate(16).tokens_per_s_per_gpu * 9 / 16)
    assert rate(1).tokens_per_s_per_gpu < rate(8).tokens_per_s_per_gpu / 7


def test_throughput_search_does_not_depend_on_the_requested_batch():
    one = search(MODEL, CLUSTER, Workload(128, 128, 1), "throughput")
    eight = search(MODEL, CLUSTER, Workload(128, 128, 8), "throughput")
    assert one.best.prediction.layout == eight.best.prediction.layout == Mesh(tp=1, pp=1, dp=8)
    assert one.best.prediction.tokens_per_s_per_gpu == pytest.approx(
        eight.best.prediction.tokens_per_s_per_gpu)
    assert one.best.batch > 8


def test_latency_search_prices_the_requested_batch():
    found = search(MODEL, CLUSTER, Workload(128, 128, 1), "latency")
    assert all(c.batch == 1 for c in found.candidates)


def test_explanation_words_layouts_by_what_they_are():
    assert kind(Mesh(tp=1, pp=1, dp=8)) == "data-parallel"
    assert kind(Mesh(tp=2, pp=2, dp=2)) == "balanced"
    assert kind(Mesh(tp=2, pp=1, dp=4)) == "TP-heavy" and kind(Mesh(tp=1, pp=2, dp=4)) == "PP-heavy"
    text = search(MODEL, CLUSTER, Workload(128, 128, 8), "throughput").explanation()
    assert "pays 64 all-reduces (0.00 ms)" not in text
    assert "tp1×pp1×dp8 (data-parallel)" in text and "no all-reduce" in text


@pytest.mark.parametrize("args,word", [((10, 0), "dp"), ((10, -1), "dp"),
                                       ((-1, 1), "max_batch")])
def test_batch_sweep_refuses_bad_input(args, word):
    with pytest.raises(ValueError, match=f"batch_sweep: {word}"):
        batch_sweep(*args)
    assert batch_sweep(10, 2) == [2, 4, 8, 10]
