"""Model shapes: published parameter counts, Megatron FLOPs, Korthikanti activations."""

import pytest

from ringpipe.cost.training.spec import TrainingSpec, executed_flops
from ringpipe.model.presets import MODEL_PRESETS, gpt_like, model_preset

# Published parameter counts (billions).
PUBLISHED = {"gpt3-175b": 175.0, "llama2-7b": 6.74, "llama2-13b": 13.0, "llama2-70b": 69.0,
             "llama3-8b": 8.03, "llama3-70b": 70.6, "llama3-405b": 405.9,
             # Mixtral paper/model cards; Qwen3 report; DeepSeek-V3 report (671B, MLA
             # simplified: tests/model/test_moe_reference.py bounds that difference)
             "mixtral-8x7b": 46.7, "mixtral-8x22b": 141.0, "qwen3-30b-a3b": 30.5,
             "deepseek-v3-like": 671.0}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_presets_have_the_published_parameter_counts(name):
    assert model_preset(name).total_params / 1e9 == pytest.approx(PUBLISHED[name], rel=0.01)


# Activated parameters per token (billions): Mixtral 12.9B and 39B, Qwen3 3.3B,
# DeepSeek-V3 37B: the preset's attention (GQA standing in for MLA) has 239M weights a
# layer against MLA's ~187M, 10% more in all.
ACTIVE = {"mixtral-8x7b": (12.9, 0.01), "mixtral-8x22b": (39.1, 0.01),
          "qwen3-30b-a3b": (3.3, 0.02), "deepseek-v3-like": (37.0, 0.1)}


@pytest.mark.parametrize("name", sorted(ACTIVE))
def test_moe_presets_activate_the_published_parameters(name):
    m = model_preset(name)
    embed = m.embedding_params + m.output_params
    active = m.layer_matmul_flops(1) / (2 * m.seq) * m.layers + embed
    published, rel = ACTIVE[name]
    assert active / 1e9 == pytest.approx(published, rel=rel)


def test_every_preset_is_covered():
    assert set(MODEL_PRESETS) == set(PUBLISHED)


def gpt(layers=24, hidden=2304, heads=24, seq=2048, vocab=51200):
    return gpt_like("gpt", layers, hidden, heads, seq, vocab, learned_positions=True)


def test_executed_flops_is_megatrons_formula_with_full_recompute():
    m = gpt(layers=96, hidden=12288, heads=96)
    batch, s, n, h, v = 1536, m.seq, m.layers, m.hidden, m.vocab
    paper = 96 * batch * s * n * h * h * (1 + s / (6 * h) + v / (16 * n * h))
    assert executed_flops(m, batch, "full") == pytest.approx(paper, rel=1e-12)
    assert executed_flops(m, batch, "none") == pytest.approx(paper * 3 / 4, rel=0.01)
    assert executed_flops(m, batch, "none") < executed_flops(m, batch, "selective") \
        < executed_flops(m, batch, "full")


def test_bad_model_and_training_input():
    with pytest.raises(ValueError, match="unknown preset 'gpt5'.*llama2-7b"):
        model_preset("gpt5")
    with pytest.raises(ValueError, match="ModelConfig.layers must be >= 1"):
        gpt_like("x", 0, 64, 4, 16, 100)
    with pytest.raises(ValueError, match="hidden=64 is not divisible by ModelConfig.heads=5"):
        gpt_like("x", 2, 64, 5, 16, 100)
    with pytest.raises(TypeError, match="ModelConfig.hidden must be an int"):
        gpt_like("x", 2, 64.0, 4, 16, 100)
    with pytest.raises(ValueError, match="kv_heads"):
        gpt_like("x", 2, 64, 4, 16, 100, kv_heads=3)
    with pytest.raises(ValueError, match="TrainingSpec.global_batch must be >= 1"):
        TrainingSpec(0)
    with pytest.raises(ValueError, match="microbatch_size .* must divide"):
        TrainingSpec(10, 4)
    with pytest.raises(ValueError, match="TrainingSpec.recompute"):
        TrainingSpec(8, recompute="some")
    with pytest.raises(ValueError, match="TrainingSpec.dtype"):
        TrainingSpec(8, dtype="fp4")
    assert TrainingSpec(8, dtype="fp8").fp8 and not TrainingSpec(8).fp8
    with pytest.raises(ValueError, match="TrainingSpec.moe_imbalance must be >= 1"):
        TrainingSpec(8, moe_imbalance=0.5)
