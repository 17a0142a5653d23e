"""Per-stage costs and memory: the embedding, head and loss on the stages that hold them,
the schedule's own peak, balanced splits in the planner, the synthesised schedule."""

import pytest

from ringpipe.cost.hardware.cluster import cluster_preset
from ringpipe.cost.training.memory import activation_bytes
from ringpipe.cost.training.operators import LayerCosts, stage_costs
from ringpipe.cost.training.pipeline.stages import rank_params, stage_bytes, weight_pass_bytes
from ringpipe.cost.training.prediction import Config
from ringpipe.cost.training.recipe import MEGATRON, Recipe
from ringpipe.cost.training.spec import TrainingSpec
from ringpipe.cost.training.step_time import StepModel
from ringpipe.mesh import Mesh
from ringpipe.model.presets import gpt_like, model_preset
from ringpipe.plan.layout import PipelineLayout
from ringpipe.schedules import generate

BIG_VOCAB = gpt_like("v256k", 8, 2048, 16, 2048, 256000)
PLAIN = Recipe(sequence_parallel=False, flash_attention=False, distributed_optimizer=False)


def step(model=BIG_VOCAB, batch=64, nodes=1, recipe=MEGATRON, headroom=0.0):
    return StepModel(model, TrainingSpec(batch, 1, "bf16", "none", recipe),
                     cluster_preset("dgx-a100", nodes), headroom=headroom)


def test_embedding_and_head_costs_sit_on_the_stages_that_hold_them():
    s = step()
    costs = LayerCosts(BIG_VOCAB, s.cluster, s.training.recipe, (0,), s.comms, 2)
    ops, one = stage_costs(costs, 1, "none", PipelineLayout.parse("E|t*4|t*4|L"))
    emb, head = costs.embedding(1), costs.head(1)
    assert ops[0].forward == pytest.approx(emb.forward)
    assert ops[1].forward == pytest.approx(4 * one.forward)
    assert ops[3].forward == pytest.approx(head.forward)
    assert head.forward + head.backward_input > 2 * (one.forward + one.backward_input)  # 256k


def test_stage_bytes_hold_logits_embedding_and_weight_pass_state():
    layout = PipelineLayout.parse("E|t*4|t*4|L")
    per = stage_bytes(BIG_VOCAB, 1, 1, "none", PLAIN, layout)
    tokens, h, v = 2048, 2048, 256000
    assert per.held[0] == pytest.approx(8 * tokens + tokens * h)  # ids, dropout mask
    assert per.held[1] == pytest.approx(4 * activation_bytes(BIG_VOCAB, 1, 1, "none", PLAIN))
    assert per.held[3] == pytest.approx(2 * tokens * h + 4 * tokens * v)  # norm input, logits
    assert per.transient[3] == pytest.approx(2 * tokens * v) and per.transient[1] == 0
    assert weight_pass_bytes(BIG_VOCAB, 1, 1, PLAIN) == pytest.approx(32 * tokens * h)
    assert per.pending[1] == pytest.approx(4 * 32 * tokens * h)


def test_tied_embedding_on_one_rank_is_counted_once():
    model = gpt_like("tied", 8, 1024, 16, 1024, 50000)  # tied embeddings
    v_layout = generate("zb-v", 2, 4)  # rank 0 holds the first and the last stage
    from ringpipe.cost.training.pipeline.stages import StageLayout
    layout = StageLayout(4, PipelineLayout.even(8, 4), v_layout.placement)
    params = rank_params(model, layout, 2, 1)
    want0 = 4 * model.params_per_layer + model.embedding_params + model.norm_params
    assert params[0] == pytest.approx(want0)  # the output layer is the embedding itself


def test_peak_memory_is_the_schedule_walk():
    """1F1B on 4 ranks with the loss alone on the last stage: rank 3 holds one micro-batch
    of fp32 logits, plus the logits' gradient while its backward runs."""
    s = step(recipe=PLAIN, batch=8)
    config = Config(Mesh(dp=2, pp=4), "1f1b", 1, None, "none", layout=PipelineLayout.parse(
        "E,t*3|t*3|t*2|L"))
    layout = s.layout(config)
    per = stage_bytes(BIG_VOCAB, 1, 1, "none", PLAIN, layout.stages)
    acts = s.sim.peak_bytes("1f1b", 4, 4, 1, per.held, per.pending, per.transient)
    assert acts[0] == pytest.approx(4 * per.held[0])  # 1F1B: 4 in flight on rank 0
    assert acts[3] == pytest.approx(per.held[3] + per.transient[3])


def test_balanced_split_moves_layers_off_the_heavy_head():
    s = step(batch=16)
    even = s.predict(Config(Mesh(dp=2, pp=4), "1f1b", 1, None, "none", "even"))
    balanced = s.predict(Config(Mesh(dp=2, pp=4), "1f1b", 1, None, "none", "balanced"))
    assert balanced.layers_per_stage[-1] < balanced.layers_per_stage[1]
    assert balanced.step_time < even.step_time
    assert balanced.to_dict()["split"] == "balanced" and balanced.to_dict()["layout"]


def test_dualpipev_and_the_synthesised_schedule_are_priced():
    s = step(model=model_preset("llama2-7b"), batch=32, nodes=1, headroom=4 * 2**30)
    dual = s.predict(Config(Mesh(pp=4, tp=2), "dualpipev", 1, None, "selective"))
    synth = s.predict(Config(Mesh(pp=4, tp=2), "auto", 1, 2, "selective"))
    zbv = s.predict(Config(Mesh(pp=4, tp=2), "zb-v", 1, None, "selective"))
    assert dual.bubble_fraction < 0.2 and synth.config.schedule == "synth"
    assert synth.step_time <= zbv.step_time * 1.05
    capped = s.predict(Config(Mesh(pp=4, tp=2), "synth", 1, 1, "selective",
                              activation_cap=4))
    assert capped.memory.activations <= synth.memory.activations
    with pytest.raises(ValueError, match="activation_cap applies to the synthesised"):
        Config(Mesh(pp=4), "1f1b", activation_cap=4)
