"""Step time and memory of one configuration."""

import dataclasses

import pytest

from ringpipe.cost.cluster import GIB, cluster_preset
from ringpipe.cost.models import ModelSpec, TrainingSpec, executed_flops, model_preset
from ringpipe.cost.pipeline import stage_layers
from ringpipe.cost.step_time import Config, StepModel

GPT = ModelSpec("gpt-20b", 48, 6144, 48, 2048, 51200, learned_positions=True)


def step(model=GPT, batch=64, nodes=2, cluster="dgx-a100", **training):
    return StepModel(model, TrainingSpec(batch, **training), cluster_preset(cluster, nodes))


def test_the_parts_add_up_to_the_step_time():
    pred = step().predict(Config(8, 2, 1, "1f1b", 1, 1, "full"))
    parts = (pred.compute_time + pred.tp_comm_time + pred.bubble_time + pred.dp_comm_time
             + pred.optimizer_time)
    assert parts == pytest.approx(pred.step_time, rel=1e-12)
    assert pred.num_microbatches == 64 and pred.dp_comm_time == 0
    assert 0 < pred.bubble_fraction < 1 / 65 * 1.5
    assert pred.tflops_per_gpu == pytest.approx(
        executed_flops(GPT, 64, "full") / pred.step_time / 16 / 1e12)
    assert pred.to_dict()["fits"] is pred.fits


def test_tp_inside_a_node_is_far_cheaper_than_across_nodes():
    model = step(nodes=4)
    inside = model.predict(Config(8, 4, 1, "1f1b", 1, 1, "full"))
    across = model.predict(Config(16, 2, 1, "1f1b", 1, 1, "full"))
    # per GPU, TP=16 runs half the layers' all-reduces, but each one crosses InfiniBand
    assert across.tp_comm_time > 3 * inside.tp_comm_time


def test_pcie_makes_tp_expensive():
    nvlink = step(nodes=1).predict(Config(8, 1, 1, "1f1b", 1, 1, "full"))
    pcie = step(nodes=1, cluster="pcie-a100").predict(Config(8, 1, 1, "1f1b", 1, 1, "full"))
    assert pcie.tp_comm_time > 5 * nvlink.tp_comm_time
    assert pcie.comm_fraction > nvlink.comm_fraction


def test_recomputation_trades_compute_for_memory():
    model = step(nodes=1)
    preds = {r: model.predict(Config(4, 2, 1, "1f1b", 2, 1, r))
             for r in ("none", "selective", "full")}
    acts = [preds[r].memory.activations for r in ("none", "selective", "full")]
    times = [preds[r].compute_time for r in ("none", "selective", "full")]
    assert acts[0] > acts[1] > acts[2] and times[0] < times[1] < times[2]


def test_activation_memory_is_per_layer_bytes_times_peak_in_flight():
    model = step(nodes=1, batch=32)
    config = Config(2, 4, 1, "1f1b", 1, 1, "selective")
    mem = model.memory(config)
    per_layer = GPT.activation_bytes(1, 2, "selective")
    # first stage: 4 micro-batches in flight x 12 layers (its states are the largest too)
    assert mem.activations == pytest.approx(4 * 12 * per_layer)
    gpipe = model.memory(dataclasses.replace(config, schedule="gpipe"))
    logits = 4 * 2048 * 51200 / 2  # fp32, on the last stage (the fullest with GPipe)
    assert gpipe.activations == pytest.approx(32 * 12 * per_layer + logits)  # all m in flight
    assert mem.reserved == 2 * GIB


def test_states_are_16_bytes_per_parameter_or_sharded():
    llama = model_preset("llama2-7b")
    whole = step(llama, nodes=1).memory(Config(1, 1, 8, "1f1b", 1, 1, "full"))
    assert whole.states == pytest.approx(16 * llama.total_params, rel=1e-6)
    sharded = step(llama, nodes=1, shard_optimizer=True).memory(
        Config(1, 1, 8, "1f1b", 1, 1, "full"))
    assert sharded.states == pytest.approx((4 + 12 / 8) * llama.total_params, rel=1e-6)


def test_uneven_stage_split_and_its_simulation():
    assert stage_layers(10, 4) == (2, 2, 3, 3)
    assert stage_layers(8, 4) == (2, 2, 2, 2)
    with pytest.raises(ValueError, match="cannot split 3 layers into 4"):
        stage_layers(3, 4)
    odd = dataclasses.replace(GPT, layers=50)
    pred = step(odd, nodes=1).predict(Config(2, 4, 1, "1f1b", 1, 1, "full"))
    even = step(nodes=1).predict(Config(2, 4, 1, "1f1b", 1, 1, "full"))
    assert pred.bubble_fraction > even.bubble_fraction  # unbalanced stages idle


def test_bad_configurations():
    model = step(nodes=1)
    with pytest.raises(ValueError, match="tp·pp·dp = 16 but the cluster has 8"):
        model.predict(Config(8, 2, 1))
    with pytest.raises(ValueError, match="not a multiple of dp·microbatch_size"):
        model.predict(Config(1, 1, 8, microbatch_size=16))
    with pytest.raises(ValueError, match="Config.tp must be >= 1"):
        Config(0, 1, 1)
    with pytest.raises(TypeError, match="Config.pp must be an int"):
        Config(1, 1.0, 1)
    with pytest.raises(ValueError, match="unknown schedule 'ring'"):
        Config(1, 1, 1, "ring")
    with pytest.raises(ValueError, match="Config.recompute"):
        Config(1, 1, 1, recompute="most")
    with pytest.raises(TypeError, match="StepModel.cluster must be a Cluster"):
        StepModel(GPT, TrainingSpec(8), "dgx-a100")
