"""The planner's context-parallel, expert-parallel and FP8 terms, against their formulas."""

import dataclasses

import pytest

from ringpipe.cost.hardware.cluster import GIB, cluster_preset
from ringpipe.cost.hardware.measured import MeasuredCollective
from ringpipe.cost.training.memory import activation_bytes
from ringpipe.cost.training.operators import LayerCosts
from ringpipe.cost.training.parallel.context import kv_block_bytes, ring_step_time
from ringpipe.cost.training.parallel.groups import mesh_groups
from ringpipe.cost.training.prediction import Config
from ringpipe.cost.training.recipe import MEGATRON
from ringpipe.cost.training.search import SearchSpace, search
from ringpipe.cost.training.spec import TrainingSpec
from ringpipe.cost.training.step_time import StepModel
from ringpipe.mesh import Mesh
from ringpipe.model.presets import model_preset

H100 = cluster_preset("dgx-h100", 8)
LLAMA = dataclasses.replace(model_preset("llama3-70b"), seq=65536)
MIXTRAL = model_preset("mixtral-8x7b")


def test_groups_place_cp_next_to_tp_and_megatron_puts_pp_outermost():
    mesh = Mesh(dp=4, pp=2, tp=4, cp=2, ep=4)
    ours = mesh_groups(mesh, 8)
    assert ours.groups["tp"] == (0, 1, 2, 3) and ours.groups["cp"] == (0, 4)
    assert not ours.crosses("cp") and ours.crosses("dp")
    assert ours.groups["ep"] == tuple(mesh.group("ep", 0))
    meg = mesh_groups(mesh, 8, "megatron")
    assert meg.groups["pp"] == (0, 32)  # the pipeline's stages are 32 GPUs apart
    assert meg.groups["dp_cp"] == (0, 4, 8, 12, 16, 20, 24, 28)
    with pytest.raises(ValueError, match="placement must be one of"):
        mesh_groups(mesh, 8, "torchtitan")


def test_cp_divides_the_tokens_and_exposes_only_what_attention_does_not_hide():
    model = LLAMA
    step = StepModel(model, TrainingSpec(64, 1), H100)
    config = Config(Mesh(dp=2, pp=1, tp=8, cp=4), "1f1b", 1, None, "full")
    groups = step.groups(config)
    costs = LayerCosts(model, H100, MEGATRON, groups.groups["tp"], step.comms, 2, 4, groups)
    one = LayerCosts(model, H100, MEGATRON, groups.groups["tp"], step.comms, 2)
    assert costs.tokens(1) == one.tokens(1) / 4
    f4, b4 = costs.attention_core(1, "none")
    f1, b1 = one.attention_core(1, "none")
    assert f4 == pytest.approx(f1 / 4) and b4 == pytest.approx(b1 / 4)
    kv = kv_block_bytes(costs, 1)
    assert kv == 2 * (65536 / 4) * (8 / 8) * 128 * 2  # K and V, one KV head per TP rank
    step_time = ring_step_time(costs, kv)
    layer = costs.layer(1, "none")
    want = 3 * max(0.0, step_time - f4 / 4) + 3 * max(0.0, ring_step_time(costs, 2 * kv)
                                                      - b4 / 4) + step_time
    assert layer.cp_comm == pytest.approx(want)
    assert activation_bytes(model, 1, 8, "none", MEGATRON, cp=4) == pytest.approx(
        activation_bytes(model, 1, 8, "none", MEGATRON) / 4)


def test_cp_across_nodes_pays_the_nic():
    """tp 8 fills a node, so the CP ring crosses nodes (every GPU at once)."""
    step = StepModel(LLAMA, TrainingSpec(64, 1), H100)
    inside = Config(Mesh(dp=4, pp=1, tp=4, cp=2), "1f1b", 1, None, "full")
    across = Config(Mesh(dp=4, pp=1, tp=8, cp=2), "1f1b", 1, None, "full")
    assert not step.groups(inside).crosses("cp") and step.groups(across).crosses("cp")
    assert step.assumptions(across)["cp_link"] == "inter-node"
    assert step.predict(across).cp_comm_time >= 0


def test_ep_shards_expert_states_and_prices_the_all_to_alls():
    training = TrainingSpec(64, 1)
    step = StepModel(MIXTRAL, training, H100)
    no_ep = Config(Mesh(dp=8, pp=1, tp=8, etp=1), "1f1b", 1, None, "full")
    ep8 = Config(Mesh(dp=8, pp=1, tp=8, ep=8, etp=1), "1f1b", 1, None, "full")
    dense0, expert0 = step.rank_param_split(no_ep, step.layout(no_ep))[0]
    dense8, expert8 = step.rank_param_split(ep8, step.layout(ep8))[0]
    assert dense0 == dense8 and expert0 == pytest.approx(8 * expert8)
    assert expert0 == pytest.approx(MIXTRAL.moe_layers * MIXTRAL.experts
                                    * MIXTRAL.expert_params)  # etp 1: whole experts
    p0, p8 = step.predict(no_ep), step.predict(ep8)
    assert p0.ep_comm_time == 0 and p8.ep_comm_time > 0
    assert p8.memory.weights < p0.memory.weights
    assert p8.memory.gradients < p0.memory.gradients
    # the distributed optimizer shards the expert state over EDP: 1/(ep·edp) either way
    assert p8.memory.optimizer == pytest.approx(p0.memory.optimizer)
    assert "ep_comm" in p8.parts() and p8.to_dict()["ep"] == 8
    etp8 = step.predict(Config(Mesh(dp=8, pp=1, tp=8), "1f1b", 1, None, "full"))
    assert etp8.ep_comm_time > 0  # no EP, but the expert-TP gathers and scatters


def test_ep_across_nodes_is_slower_than_inside_one():
    """EP 8 with tp 1 in one node vs EP 8 spread one rank per node (pp 8 outermost on
    ringpipe's placement, innermost on Megatron's)."""
    training = TrainingSpec(64, 1)
    mesh = Mesh(dp=8, pp=8, tp=1, ep=8)
    ours = StepModel(MIXTRAL, training, H100).predict(Config(mesh, "1f1b", 1, None, "full"))
    meg = StepModel(MIXTRAL, training, H100, placement="megatron").predict(
        Config(mesh, "1f1b", 1, None, "full"))
    assert ours.assumptions["ep_link"] == "inter-node"
    assert meg.assumptions["ep_link"] == "intra-node"
    assert meg.ep_comm_time < ours.ep_comm_time


def test_fp8_runs_gemms_faster_keeps_copies_and_needs_hopper():
    model = model_preset("llama3-8b")
    config = Config(Mesh(dp=8, pp=1, tp=8), "1f1b", 1, None, "full")
    bf16 = StepModel(model, TrainingSpec(64, 1), H100).predict(config)
    fp8 = StepModel(model, TrainingSpec(64, 1, "fp8"), H100).predict(config)
    assert fp8.compute_time < bf16.compute_time
    assert fp8.fp8_cast_time > 0 and "fp8_weight_casts" in fp8.parts()
    assert fp8.memory.weights == pytest.approx(2 * bf16.memory.weights)
    assert fp8.memory.activations < bf16.memory.activations or config.recompute == "full"
    with pytest.raises(ValueError, match="dgx-a100 has no FP8 tensor cores"):
        StepModel(model, TrainingSpec(64, 1, "fp8"), cluster_preset("dgx-a100", 8)
                  ).predict(config)


def test_the_search_covers_cp_and_ep_and_says_what_they_buy():
    long = dataclasses.replace(model_preset("llama3-8b"), seq=131072)
    report = search(long, TrainingSpec(16), cluster_preset("dgx-h100", 2))
    assert report.best.config.cp > 1
    assert "Context parallelism (CP=" in report.explanation()
    moe = search(MIXTRAL, TrainingSpec(256), cluster_preset("dgx-h100", 4))
    assert moe.best.config.ep > 1
    assert "Expert parallelism (EP=" in moe.explanation()
    pinned = search(MIXTRAL, TrainingSpec(256), cluster_preset("dgx-h100", 4),
                    SearchSpace(ep=1), compare_unpinned=False)
    assert pinned.best.config.ep == 1 and pinned.best.step_time > moe.best.step_time
    assert moe.best.memory.total / GIB < 80


def test_a_measured_all_to_all_table_prices_the_dispatch():
    """A cluster file's measured all_to_all (nccl-tests' alltoall_perf on the EP group's
    8 ranks in one node) replaces the α-β price of the dispatch and combine."""
    config = Config(Mesh(dp=8, pp=1, tp=1, ep=8), "1f1b", 1, None, "full")
    slow = MeasuredCollective("all_to_all", 8, 1, (1.0, 2.0**40), (1e-3, 2**40 * 1e-3),
                              "test: a slow fabric")
    one_node = cluster_preset("dgx-h100", 1)
    measured = dataclasses.replace(one_node, collectives=(slow,))
    base = StepModel(MIXTRAL, TrainingSpec(64, 1), one_node).predict(config)
    timed = StepModel(MIXTRAL, TrainingSpec(64, 1), measured).predict(config)
    assert timed.ep_comm_time > 100 * base.ep_comm_time > 0
