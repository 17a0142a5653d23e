"""ModelConfig validation, parameter naming / layout, init, shard_params and gather_grads."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringpipe.model import (
    ModelConfig,
    gather_grads,
    init_params,
    param_shapes,
    shard_param_shapes,
    shard_params,
    split_axis,
)


@pytest.mark.parametrize("kw, field", [
    (dict(layers=0), "layers"), (dict(hidden=0), "hidden"), (dict(heads=0), "heads"),
    (dict(seq=0), "seq"), (dict(vocab=-1), "vocab"), (dict(ffn=0), "ffn"),
    (dict(hidden=10, heads=4), "hidden"), (dict(block="moe"), "block"),
    (dict(norm="batchnorm"), "norm"), (dict(dtype="float16"), "dtype"),
    (dict(eps=0.0), "eps"), (dict(eps=float("nan")), "eps"),
])
def test_bad_config_raises_value_error_naming_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        ModelConfig(**kw)


@pytest.mark.parametrize("kw, field", [
    (dict(layers=2.0), "layers"), (dict(hidden="8"), "hidden"), (dict(seq=True), "seq"),
    (dict(eps="1e-5"), "eps"),
])
def test_wrong_types_raise_type_error(kw, field):
    with pytest.raises(TypeError, match=field):
        ModelConfig(**kw)


def test_defaults_and_frozen():
    cfg = ModelConfig(hidden=8, heads=2)
    assert cfg.ffn == 32 and cfg.head_dim == 4 and cfg.np_dtype == np.float64
    with pytest.raises(AttributeError):
        cfg.hidden = 4  # type: ignore[misc]


@pytest.mark.parametrize("tp, field", [(3, "heads"), (4, "heads"), (8, "hidden")])
def test_check_tp_names_the_field(tp, field):
    cfg = ModelConfig(hidden=12, heads=2, ffn=24)
    with pytest.raises(ValueError, match=field):
        cfg.check_tp(tp)


def test_check_tp_ffn_and_types():
    with pytest.raises(ValueError, match="ffn"):
        ModelConfig(hidden=8, heads=4, ffn=6).check_tp(4)
    with pytest.raises(ValueError, match="tp"):
        ModelConfig().check_tp(0)
    with pytest.raises(TypeError, match="tp"):
        ModelConfig().check_tp(2.0)
    ModelConfig(hidden=8, heads=1, block="mlp").check_tp(4)  # heads irrelevant without attn


@given(layers=st.integers(1, 3), hidden_mult=st.integers(1, 3), heads=st.sampled_from([1, 2, 4]),
       vocab=st.sampled_from([0, 5]), block=st.sampled_from(["transformer", "mlp"]),
       norm=st.sampled_from(["rmsnorm", "layernorm"]))
def test_num_params_matches_shapes(layers, hidden_mult, heads, vocab, block, norm):
    cfg = ModelConfig(layers=layers, hidden=4 * hidden_mult, heads=heads, vocab=vocab,
                      block=block, norm=norm)
    assert cfg.num_params() == sum(int(np.prod(s)) for s in param_shapes(cfg).values())


def test_names_and_shapes():
    cfg = ModelConfig(layers=2, hidden=8, heads=2, ffn=12, vocab=5, norm="layernorm")
    shapes = param_shapes(cfg)
    assert shapes["embed.weight"] == (5, 8)
    assert shapes["layers.1.attn.qkv.weight"] == (8, 24)
    assert shapes["layers.1.attn.out.weight"] == (8, 8)
    assert shapes["layers.0.mlp.fc1.weight"] == (8, 12)
    assert shapes["layers.0.mlp.fc2.weight"] == (12, 8)
    assert shapes["layers.0.norm2.bias"] == (8,)
    assert shapes["head.weight"] == (8, 5) and shapes["final_norm.bias"] == (8,)
    dense = param_shapes(ModelConfig(layers=1, hidden=8, heads=2, block="mlp"))
    assert "in_proj.weight" in dense and "layers.0.norm1.weight" not in dense
    assert "layers.0.norm2.bias" not in dense and dense["head.weight"] == (8, 8)


def test_init_is_deterministic_and_dtype():
    cfg = ModelConfig(layers=2, hidden=8, heads=2, vocab=5)
    a, b, c = init_params(cfg, 1), init_params(cfg, 1), init_params(cfg, 2)
    assert all(np.array_equal(a[n], b[n]) for n in a)
    assert not np.array_equal(a["head.weight"], c["head.weight"])
    f32 = init_params(ModelConfig(layers=2, hidden=8, heads=2, vocab=5, dtype="float32"), 1)
    assert all(v.dtype == np.float32 and v.flags.c_contiguous for v in f32.values())
    assert np.array_equal(f32["head.weight"], a["head.weight"].astype(np.float32))
    with pytest.raises(TypeError, match="seed"):
        init_params(cfg, 1.5)


def test_split_axis_rules():
    assert split_axis("layers.3.attn.qkv.weight") == 1
    assert split_axis("layers.3.attn.qkv.bias") == 0
    assert split_axis("layers.3.attn.out.weight") == 0
    assert split_axis("layers.3.attn.out.bias") is None
    assert split_axis("layers.0.mlp.fc1.weight") == 1
    assert split_axis("layers.0.mlp.fc2.weight") == 0
    assert split_axis("layers.0.mlp.fc2.bias") is None
    for name in ("embed.weight", "in_proj.weight", "head.weight", "layers.0.norm1.weight"):
        assert split_axis(name) is None


def test_qkv_shards_hold_whole_heads():
    """Rank t's qkv columns are heads [t*a/T, (t+1)*a/T), each as [q | k | v]."""
    cfg = ModelConfig(layers=1, hidden=8, heads=4)
    params = init_params(cfg, 0)
    w = params["layers.0.attn.qkv.weight"]
    d, tp = cfg.head_dim, 2
    shards = shard_params(cfg, params, tp)
    for t in range(tp):
        local = shards[t]["layers.0.attn.qkv.weight"]
        for j, head in enumerate(range(t * 2, t * 2 + 2)):
            for part in range(3):
                got = local[:, j * 3 * d + part * d:j * 3 * d + (part + 1) * d]
                want = w[:, head * 3 * d + part * d:head * 3 * d + (part + 1) * d]
                assert np.array_equal(got, want)


@pytest.mark.parametrize("tp", [1, 2, 4])
def test_shard_then_gather_round_trips(tp):
    cfg = ModelConfig(layers=2, hidden=8, heads=4, vocab=6, norm="layernorm")
    params = init_params(cfg, 0)
    shards = shard_params(cfg, params, tp)
    want = shard_param_shapes(cfg, tp)
    for shard in shards:
        assert {n: v.shape for n, v in shard.items()} == want
        assert all(v.flags.c_contiguous for v in shard.values())
    assert not np.shares_memory(shards[0]["head.weight"], params["head.weight"])
    back = gather_grads(cfg, shards, tp, check_replicated=True)
    assert all(np.array_equal(back[n], params[n]) for n in params)


def test_gather_grads_checks():
    cfg = ModelConfig(layers=1, hidden=8, heads=2)
    shards = shard_params(cfg, init_params(cfg, 0), 2)
    shards[1]["head.bias"] = shards[1]["head.bias"] + 1.0
    with pytest.raises(ValueError, match="head.bias"):
        gather_grads(cfg, shards, 2, check_replicated=True)
    gather_grads(cfg, shards, 2)  # unchecked: rank 0's copy is taken
    with pytest.raises(ValueError, match="shard_grads"):
        gather_grads(cfg, shards[:1], 2)
    shards[1]["layers.0.mlp.fc1.weight"] = shards[1]["layers.0.mlp.fc1.weight"][:, :3]
    with pytest.raises(ValueError, match="fc1.weight"):
        gather_grads(cfg, shards, 2)


def test_shard_params_validates():
    cfg = ModelConfig(layers=1, hidden=8, heads=2)
    params = init_params(cfg, 0)
    with pytest.raises(ValueError, match="heads"):
        shard_params(cfg, params, 4)
    params["extra"] = np.zeros(1)
    with pytest.raises(ValueError, match="extra"):
        shard_params(cfg, params, 2)


# Exact parameter counts of the released checkpoints (the safetensors totals Hugging Face
# lists for meta-llama/Llama-2-{7,13,70}b-hf and Meta-Llama-3{,.1}-{8,70,405}B): one
# RMSNorm of h weights before the head, no biases, untied output layer.
RELEASED = {"llama2-7b": 6_738_415_616, "llama2-13b": 13_015_864_320,
            "llama2-70b": 68_976_648_192, "llama3-8b": 8_030_261_248,
            "llama3-70b": 70_553_706_496, "llama3-405b": 405_853_388_800}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_llama_presets_count_the_released_checkpoints_exactly(name):
    from ringpipe.model.presets import model_preset

    assert model_preset(name).total_params == RELEASED[name]


def test_one_description_prices_and_builds():
    """The NumPy model's tensors sum to the same count the cost model prices, and a
    priced-only architecture is refused by the NumPy model, by name."""
    from ringpipe.model.presets import gpt_like

    for cfg in (ModelConfig(), ModelConfig(vocab=50, norm="layernorm", kv_heads=2),
                ModelConfig(block="mlp", layers=3)):
        assert cfg.total_params == sum(int(np.prod(s)) for s in param_shapes(cfg).values())
    gpt = gpt_like("g", 2, 64, 4, 16, 100)
    with pytest.raises(ValueError, match="param_shapes: the NumPy model does not build "
                                         "tied_embeddings=True, dropout=True"):
        param_shapes(gpt)


def test_the_former_model_spec_warns_and_gives_the_same_model():
    import ringpipe.cost as cost
    from ringpipe.model.presets import gpt_like

    with pytest.warns(FutureWarning, match="ringpipe.cost.ModelSpec is deprecated"):
        spec = cost.ModelSpec("g", 2, 64, 4, 16, 100)
    assert spec == gpt_like("g", 2, 64, 4, 16, 100)
    with pytest.warns(FutureWarning, match="ringpipe.cost.plan is deprecated"):
        assert cost.plan is cost.search
