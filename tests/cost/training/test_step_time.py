"""Step time and memory of one configuration."""

import dataclasses

import pytest

from ringpipe.cost.hardware.cluster import cluster_preset
from ringpipe.cost.training.prediction import Config
from ringpipe.cost.training.recipe import SC21, Recipe
from ringpipe.cost.training.spec import TrainingSpec, executed_flops
from ringpipe.cost.training.step_time import StepModel
from ringpipe.mesh import Mesh
from ringpipe.model.presets import gpt_like
from ringpipe.plan.layout import split_layers

GPT = gpt_like("gpt-20b", 48, 6144, 48, 2048, 51200, learned_positions=True)


DEFAULT = Recipe()


def step(model=GPT, batch=64, nodes=2, cluster="dgx-a100", recipe=DEFAULT, **training):
    return StepModel(model, TrainingSpec(batch, recipe=recipe, **training),
                     cluster_preset(cluster, nodes))


def cfg(tp, pp, dp, schedule="1f1b", mbs=1, chunks=None, recompute="full"):
    return Config(Mesh(dp=dp, pp=pp, tp=tp), schedule, mbs, chunks, recompute)


def test_the_parts_add_up_to_the_step_time():
    pred = step().predict(cfg(8, 2, 1))
    assert sum(pred.parts().values()) == pytest.approx(pred.step_time, rel=1e-12)
    assert pred.num_microbatches == 64 and pred.dp_comm_time == 0
    # (p-1)/(m+p-1) = 1/65 with equal stages; the logit layer makes the last one longer
    assert 1 / 65 < pred.bubble_fraction < 2 / 65
    assert pred.hardware_tflops_per_gpu == pytest.approx(
        executed_flops(GPT, 64, "full") / pred.step_time / 16 / 1e12)
    assert pred.model_tflops_per_gpu == pytest.approx(
        executed_flops(GPT, 64, "none") / pred.step_time / 16 / 1e12)
    assert pred.mfu == pytest.approx(pred.model_tflops_per_gpu * 1e12 / 312e12)
    assert pred.hfu > pred.mfu  # full recomputation counted in hardware FLOPs only
    d = pred.to_dict()
    assert d["fits"] is pred.fits and d["layers_per_stage"] == [24, 24]
    assert d["memory"]["total_gib"] == pytest.approx(d["memory_gib"])


def test_tp_inside_a_node_is_far_cheaper_than_across_nodes():
    model = step(nodes=4)
    inside = model.predict(cfg(8, 4, 1))
    across = model.predict(cfg(16, 2, 1))
    assert across.tp_comm_time > 3 * inside.tp_comm_time


def test_pcie_makes_tp_expensive():
    nvlink = step(nodes=1).predict(cfg(8, 1, 1))
    pcie = step(nodes=1, cluster="pcie-a100").predict(cfg(8, 1, 1))
    assert pcie.tp_comm_time > 5 * nvlink.tp_comm_time
    assert pcie.comm_fraction > nvlink.comm_fraction


def test_recomputation_trades_compute_for_memory():
    for recipe in (SC21, Recipe()):
        model = step(nodes=1, recipe=recipe)
        preds = {r: model.predict(cfg(4, 2, 1, mbs=2, recompute=r))
                 for r in ("none", "selective", "full")}
        acts = [preds[r].memory.activations for r in ("none", "selective", "full")]
        times = [preds[r].compute_time for r in ("none", "selective", "full")]
        assert acts[0] > acts[1] > acts[2] and times[0] < times[1] < times[2]


def test_uneven_layers_use_the_plan_split():
    odd = dataclasses.replace(GPT, layers=50)
    pred = step(odd, nodes=1).predict(cfg(2, 4, 1))
    assert pred.layers_per_stage == split_layers(50, 4) == (13, 13, 12, 12)
    even = step(nodes=1).predict(cfg(2, 4, 1))
    assert pred.step_time > even.step_time
    lopsided = step(dataclasses.replace(GPT, layers=5), nodes=1).predict(cfg(2, 4, 1))
    assert lopsided.layers_per_stage == (2, 1, 1, 1)
    assert lopsided.bubble_fraction > even.bubble_fraction  # the 2-layer stage paces all


def test_headroom_moves_the_fit_line():
    model = step(nodes=1)
    config = cfg(8, 1, 1)
    pred = model.predict(config)
    free = pred.memory_capacity - pred.memory.total
    assert pred.fits
    tight = dataclasses.replace(model, headroom=free + 1).predict(config)
    assert not tight.fits and tight.memory == pred.memory


def test_bad_configurations():
    model = step(nodes=1)
    with pytest.raises(ValueError, match="tp·pp·dp = 16 but the cluster has 8"):
        model.predict(cfg(8, 2, 1))
    with pytest.raises(ValueError, match="not a multiple of dp·microbatch_size"):
        model.predict(cfg(1, 1, 8, mbs=16))
    with pytest.raises(ValueError, match="Mesh: tp must be >= 1"):
        cfg(0, 1, 1)
    with pytest.raises(ValueError, match="unknown schedule 'ring'"):
        cfg(1, 1, 1, "ring")
    with pytest.raises(ValueError, match="Config.recompute"):
        cfg(1, 1, 1, recompute="most")
    with pytest.raises(TypeError, match="Config.microbatch_size must be an int"):
        Config(Mesh(), "1f1b", 1.0)
    with pytest.raises(TypeError, match="StepModel.cluster must be a Cluster"):
        StepModel(GPT, TrainingSpec(8), "dgx-a100")
    with pytest.raises(ValueError, match=r"headroom \(bytes\) must be >= 0"):
        StepModel(GPT, TrainingSpec(8), cluster_preset("dgx-a100"), headroom=-1)
    with pytest.raises(TypeError, match="TrainingSpec.recipe must be a Recipe"):
        TrainingSpec(8, recipe="megatron")
