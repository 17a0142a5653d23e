"""Memory per GPU: each recipe option against the cited formulas, computed by hand."""

import dataclasses

import pytest

from ringpipe.cost.hardware.cluster import GIB, cluster_preset
from ringpipe.cost.training.memory import (
    NCCL_BYTES_PER_COMMUNICATOR,
    RESERVED_BYTES,
    activation_bytes,
    comm_buffer_bytes,
    state_bytes_per_param,
)
from ringpipe.cost.training.prediction import Config
from ringpipe.cost.training.recipe import MEGATRON, SC21, Recipe
from ringpipe.cost.training.spec import TrainingSpec
from ringpipe.cost.training.step_time import StepModel
from ringpipe.mesh import Mesh
from ringpipe.model.presets import gpt_like, model_preset

GPT = gpt_like("gpt", 24, 2304, 24, 2048, 51200, learned_positions=True)
NO_SP = Recipe(sequence_parallel=False, flash_attention=False)
SP = Recipe(sequence_parallel=True, flash_attention=False)
FLASH_SP = Recipe(sequence_parallel=True, flash_attention=True)


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
@pytest.mark.parametrize("b", [1, 4])
def test_korthikanti_table_2_for_gpt(tp, b):
    """Korthikanti et al. 2022, Table 2 (16-bit, bytes per layer)."""
    s, h, a = GPT.seq, GPT.hidden, GPT.heads
    sbh = s * b * h
    scores = 5 * a * s / h
    assert activation_bytes(GPT, b, tp, "none", NO_SP) == pytest.approx(
        sbh * (10 + 24 / tp + scores / tp))
    assert activation_bytes(GPT, b, tp, "selective", NO_SP) == pytest.approx(
        sbh * (10 + 24 / tp))
    assert activation_bytes(GPT, b, tp, "none", SP) == pytest.approx(
        sbh / tp * (34 + scores))
    assert activation_bytes(GPT, b, tp, "selective", SP) == pytest.approx(34 * sbh / tp)
    assert activation_bytes(GPT, b, tp, "full", NO_SP) == 2 * sbh
    assert activation_bytes(GPT, b, tp, "full", SP) == pytest.approx(2 * sbh / tp)


def test_flash_attention_keeps_only_the_log_sum_exp():
    s, h, a, t = GPT.seq, GPT.hidden, GPT.heads, 4
    lse = 4 * a * s / t  # fp32, one per (head, token)
    assert activation_bytes(GPT, 1, t, "none", FLASH_SP) == pytest.approx(
        34 * s * h / t + lse)
    # selective under flash: the norm outputs (4sbh/t) and the GeLU output (2sbf/t = 8sbh/t)
    assert activation_bytes(GPT, 1, t, "selective", FLASH_SP) == pytest.approx(
        (34 - 4 - 8) * s * h / t + lse)


def test_gqa_and_swiglu_terms():
    """Q, K, V: 2sbh(1 + 2·kv/a); SwiGLU MLP: 6sbf (GeLU: 4sbf); no dropout masks."""
    llama = model_preset("llama3-405b")
    s, h, f, t = llama.seq, llama.hidden, llama.ffn, 8
    sbh = s * h
    qkv = 2 * sbh * (1 + 2 * 8 / 128)
    per_layer = (8 * sbh) / t + (qkv + 2 * sbh + 6 * s * f) / t + 4 * 128 * s / t
    assert activation_bytes(llama, 1, t, "none", MEGATRON) == pytest.approx(per_layer)
    mha = dataclasses.replace(llama, kv_heads=128)
    gelu = dataclasses.replace(llama, gated_mlp=False)
    assert activation_bytes(mha, 1, t, "none", MEGATRON) - per_layer == pytest.approx(
        2 * sbh * 2 * (120 / 128) / t)
    assert per_layer - activation_bytes(gelu, 1, t, "none", MEGATRON) == pytest.approx(
        2 * s * f / t)


def test_model_states_follow_megatrons_distributed_optimizer_table():
    """bf16 + fp32 grads: 18 bytes, or 6 + 12/d; fp16: 20 bytes, or 4 + 16/d."""
    assert sum(state_bytes_per_param("bf16", Recipe(distributed_optimizer=False), 8)) == 18
    assert sum(state_bytes_per_param("bf16", MEGATRON, 8)) == 6 + 12 / 8
    assert sum(state_bytes_per_param("fp16", SC21, 8)) == 20
    assert sum(state_bytes_per_param("fp16", Recipe(fp32_grads=False), 4)) == 4 + 16 / 4


def test_comm_buffers_and_reserve():
    assert comm_buffer_bytes(GPT, 2, 1, SP, 2) == 3 * NCCL_BYTES_PER_COMMUNICATOR
    assert comm_buffer_bytes(GPT, 2, 4, SP, 2) == 3 * NCCL_BYTES_PER_COMMUNICATOR \
        + 2 * GPT.seq * GPT.hidden * 2
    assert comm_buffer_bytes(GPT, 2, 4, NO_SP, 2) == 3 * NCCL_BYTES_PER_COMMUNICATOR
    assert RESERVED_BYTES == 1.5 * GIB


def test_breakdown_on_the_peak_rank():
    """1F1B on 4 pipeline ranks: rank 0 holds 4 micro-batches × (6 layers of activations
    and the embedding's token ids and dropout mask); the parts add up to the total."""
    recipe = Recipe(distributed_optimizer=False)
    step = StepModel(GPT, TrainingSpec(16, recipe=recipe), cluster_preset("dgx-a100", 1))
    mem = step.memory(Config(Mesh(dp=1, pp=4, tp=2), "1f1b", 1, None, "none"))
    per_layer = activation_bytes(GPT, 1, 2, "none", recipe)
    assert mem.peak_rank == 0 and mem.peak_in_flight == 4
    tokens = GPT.seq * 1
    embedding = 8 * tokens + tokens * GPT.hidden / 2  # ids; dropout mask, SP-split
    assert mem.activations == pytest.approx(4 * (6 * per_layer + embedding))
    params = (6 * GPT.params_per_layer + GPT.embedding_params) / 2
    assert (mem.weights, mem.gradients, mem.optimizer) == pytest.approx(
        (2 * params, 4 * params, 12 * params))
    assert mem.total == pytest.approx(mem.states + mem.activations + mem.comm_buffers
                                      + mem.reserved)
    d = mem.to_dict()
    assert d["total_gib"] == pytest.approx(mem.total / GIB) and d["peak_pipeline_rank"] == 0
    assert "on pipeline rank 0" in mem.describe()


def test_each_recipe_option_lowers_memory():
    base = Recipe(sequence_parallel=False, flash_attention=False,
                  distributed_optimizer=False)
    config = Config(Mesh(dp=2, pp=2, tp=2), "1f1b", 2, None, "none")

    def total(recipe):
        step = StepModel(GPT, TrainingSpec(32, recipe=recipe), cluster_preset("dgx-a100", 1))
        return step.memory(config)

    plain = total(base)
    for option in ("sequence_parallel", "flash_attention", "distributed_optimizer"):
        better = total(dataclasses.replace(base, **{option: True}))
        assert better.total < plain.total, option
    distopt = total(dataclasses.replace(base, distributed_optimizer=True))
    assert distopt.optimizer == pytest.approx(plain.optimizer / 2)  # 12 bytes / dp
