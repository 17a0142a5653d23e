"""The planner's choices and its errors."""

import pytest

from ringpipe.cost.hardware.cluster import cluster_preset
from ringpipe.cost.training.explain import explain
from ringpipe.cost.training.parallel.space import factorisations
from ringpipe.cost.training.search import FitsNowhere, SearchSpace, search
from ringpipe.cost.training.spec import TrainingSpec
from ringpipe.model.presets import gpt_like, model_preset
from ringpipe.schedules import SCHEDULES

# ~101B parameters: 18-byte states (bf16, fp32 grads, Adam) need > 16 A100-80GB without DP
GPT_100B = gpt_like("gpt-100b", 80, 10240, 80, 2048, 51200, learned_positions=True)


@pytest.fixture(scope="module")
def big_on_four_nodes():
    return search(GPT_100B, TrainingSpec(32), cluster_preset("dgx-a100", 4))


def test_a_model_needing_32_gpus_uses_all_of_them_for_model_parallelism(big_on_four_nodes):
    best = big_on_four_nodes.best
    assert best.config.tp * best.config.pp == 32 and best.config.dp == 1
    assert best.config.tp in (4, 8)  # TP inside the node, PP across nodes
    # 6 + 12/dp bytes per parameter (distributed optimizer): dp=2 needs >= 16 GPUs/replica
    assert all(p.config.tp * p.config.pp >= 16 for p in big_on_four_nodes.fitting)


def test_tp_stays_in_the_node_and_pp_spans_nodes(big_on_four_nodes):
    for p in big_on_four_nodes.fitting[:5]:
        assert p.config.tp <= 8 < p.config.tp * p.config.pp
    across = [p for p in big_on_four_nodes.fitting if p.config.tp > 8]
    assert across and min(p.step_time for p in across) > 1.2 * big_on_four_nodes.best.step_time


def test_pcie_prefers_smaller_tp_than_nvlink():
    model, training = model_preset("llama2-13b"), TrainingSpec(256)
    nvlink = search(model, training, cluster_preset("dgx-a100", 1))
    pcie = search(model, training, cluster_preset("pcie-a100", 1))
    assert pcie.best.config.tp <= nvlink.best.config.tp

    def tp8_penalty(report):
        tp8 = min(p.step_time for p in report.fitting if p.config.tp == 8)
        return tp8 / report.best.step_time

    assert tp8_penalty(pcie) > 1.2 * tp8_penalty(nvlink)


def test_candidates_are_ranked_and_non_fitting_ones_follow(big_on_four_nodes):
    cands = big_on_four_nodes.candidates
    fitting = [p for p in cands if p.fits]
    assert cands[: len(fitting)] == tuple(fitting)
    assert [p.step_time for p in fitting] == sorted(p.step_time for p in fitting)
    assert any(not p.fits for p in cands)
    schedules = {p.config.schedule for p in cands}
    assert schedules == set(SCHEDULES)  # every built-in schedule, zb-v included


def test_explanation_names_the_runner_up_and_the_reasons(big_on_four_nodes):
    report = big_on_four_nodes
    other = report.runner_up
    best = report.best
    assert (other.config.tp, other.config.pp) != (best.config.tp, best.config.pp)
    text = report.explanation()
    assert best.config.label() in text and other.config.label() in text
    assert "pipeline bubble" in text or "tensor-parallel communication" in text
    assert "model TFLOP/s per GPU (MFU" in text and "hardware FLOPs with recomputation" in text
    assert "Memory per GPU:" in text and "optimizer" in text and "activations" in text
    alone = explain(report.best, None, report.cluster)
    assert "No fitting configuration" in alone


def test_all_pins_give_the_single_configuration_and_the_best_unpinned():
    training = TrainingSpec(32, microbatch_size=1, recompute="selective")
    space = SearchSpace(tp=8, pp=4, dp=1, schedule="interleaved-1f1b", chunks=2, split="even")
    report = search(GPT_100B, training, cluster_preset("dgx-a100", 4), space)
    assert len(report.candidates) == 1
    c = report.best.config
    assert (c.tp, c.pp, c.dp, c.schedule, c.chunks, c.microbatch_size, c.recompute) == \
        (8, 4, 1, "interleaved-1f1b", 2, 1, "selective")
    free = report.unpinned_best
    assert free is not None and free.step_time <= report.best.step_time
    text = report.explanation()
    slowdown = report.best.step_time / free.step_time - 1
    if slowdown > 0:
        assert f"predicted {slowdown:.1%} slower, mainly through" in text
        assert free.config.label() in text


def test_pinning_tp_and_pp_compares_with_the_best_unpinned():
    """The issue's complaint: pinning --tp 8 --pp 4 must say how much slower it is."""
    report = search(GPT_100B, TrainingSpec(32), cluster_preset("dgx-a100", 4),
                  SearchSpace(tp=8, pp=4))
    assert {(p.config.tp, p.config.pp) for p in report.candidates} == {(8, 4)}
    assert report.unpinned_best is not None
    assert "The best configuration without the pins" in report.explanation() or \
        "also the best configuration without the pins" in report.explanation()


def test_headroom_decides_what_fits():
    """A configuration fits when memory + headroom <= capacity: raising the headroom past
    the best's free memory pushes the search to another configuration (or none)."""
    cluster = cluster_preset("dgx-a100", 4)
    report = search(GPT_100B, TrainingSpec(32), cluster, headroom_gib=0)
    best = report.best
    free_gib = (best.memory_capacity - best.memory.total) / 2**30
    assert best.fits and best.headroom == 0
    try:
        tighter = search(GPT_100B, TrainingSpec(32), cluster, headroom_gib=free_gib + 0.5)
    except FitsNowhere:
        return
    assert tighter.best.config != best.config
    assert tighter.best.memory.total + (free_gib + 0.5) * 2**30 <= tighter.best.memory_capacity
    with pytest.raises(ValueError, match=r"headroom \(GiB\) must be >= 0"):
        search(GPT_100B, TrainingSpec(32), cluster, headroom_gib=-1)


def test_factorisations_respect_heads_layers_and_batch():
    model = gpt_like("m", 12, 768, 12, 1024, 50000)
    got = factorisations(model, TrainingSpec(16), 16, SearchSpace(split="even"))
    assert (4, 4, 1) in got and (16, 1, 1) not in got  # 16 does not divide 12 heads
    assert all(12 % pp == 0 and 16 % dp == 0 for _, pp, dp in got)
    uneven = factorisations(model, TrainingSpec(16), 16, SearchSpace(allow_uneven=True,
                                                                      split="even"))
    assert (1, 8, 2) in uneven and (1, 8, 2) not in got
    # balanced splits (searched by default) hold 12 layers on any pp <= 14
    assert (1, 8, 2) in factorisations(model, TrainingSpec(16), 16, SearchSpace())


def test_no_factorisation_fits_the_gpu_count():
    model = gpt_like("odd", 7, 70, 7, 64, 100)
    with pytest.raises(ValueError, match="no TP×PP×DP factorisation of 8 GPUs fits odd"):
        search(model, TrainingSpec(7), cluster_preset("dgx-a100", 1),
               SearchSpace(split="even"))
    with pytest.raises(ValueError, match="no TP×PP×DP factorisation of 16 GPUs fits odd"):
        search(model, TrainingSpec(7), cluster_preset("dgx-a100", 2))  # pp 16 > 7 + 2
    with pytest.raises(ValueError, match="tp=3 does not divide the cluster's 32 GPUs"):
        factorisations(GPT_100B, TrainingSpec(32), 32, SearchSpace(tp=3))
    with pytest.raises(ValueError, match="with tp=16"):  # divides 32, not the heads
        factorisations(gpt_like("odd", 7, 70, 7, 64, 100), TrainingSpec(32), 32,
                       SearchSpace(tp=16))


def test_fits_nowhere_gives_the_smallest_memory_needed():
    with pytest.raises(FitsNowhere, match=r"smallest memory per GPU .* is \d+\.\d GiB") as err:
        search(GPT_100B, TrainingSpec(64), cluster_preset("dgx-a100", 2))
    assert isinstance(err.value, ValueError)
    report = err.value.report
    assert report.best is None and not report.fitting and report.candidates
    need = min(p.memory.total for p in report.candidates) / 2**30
    assert f"{need:.1f} GiB" in str(err.value) and need > 80


def test_bad_search_space():
    with pytest.raises(ValueError, match="unknown schedule 'pipedream'"):
        SearchSpace(schedule="pipedream")
    with pytest.raises(ValueError, match="tp must be >= 1"):
        SearchSpace(tp=0)
    with pytest.raises(TypeError, match="chunks must be an int"):
        SearchSpace(chunks="2")
    with pytest.raises(ValueError, match="1f1b does not take chunks per rank"):
        SearchSpace(schedule="1f1b", chunks=2)


def test_balanced_splits_find_the_published_layout():
    """Llama 3 405B (126 layers) on 1024 × dgx-h100: pp must be a power of two, and no
    power of two divides 126 beyond 2, where nothing fits; the balanced split (the
    embedding and the head on stages with fewer layers) finds the published production
    layout, TP8 × PP16 × DP64, whose first and last stages hold fewer layers (Llama Team
    2024, §3.3.2: one layer fewer on the first and the last stage), among the layouts
    without context parallelism (it ran with CP 1)."""
    report = search(model_preset("llama3-405b"), TrainingSpec(2048, 1),
                    cluster_preset("dgx-h100", 1024), SearchSpace(cp=1),
                    compare_unpinned=False)
    best = report.best.config
    assert (best.tp, best.pp, best.dp) == (8, 16, 64) and best.split == "balanced"
    layers = report.best.layers_per_stage
    assert sum(layers) == 126 and layers[0] < max(layers) and layers[-1] < max(layers)
