"""The reference model's SwiGLU MLP and MoE layers: central differences of the whole
objective (language-model loss + auxiliary loss), the parameter counts, the routing."""

import numpy as np
import pytest
from stage_helpers import make_data

from ringpipe.model import ModelConfig, init_params, param_shapes, reference_forward_backward
from ringpipe.model.moe.maths import route, route_backward

CONFIGS = [
    dict(gated_mlp=True),
    dict(gated_mlp=True, vocab=7, norm="layernorm"),
    dict(experts=4, top_k=2, moe_ffn=6),
    dict(experts=4, top_k=2, moe_ffn=6, shared_experts=1, dense_layers=1, aux_loss_coeff=0.1,
         vocab=7),
    dict(experts=3, top_k=1, moe_ffn=6, moe_norm_topk=False, aux_loss_coeff=0.3),
    dict(experts=4, top_k=3, moe_ffn=6, block="mlp", gated_mlp=True, dense_layers=1),
]


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_gradients_of_the_objective_match_central_differences(kw):
    cfg = ModelConfig(layers=2, hidden=8, heads=2, seq=4, ffn=12, **kw)
    params = init_params(cfg, seed=3)
    assert cfg.total_params == sum(v.size for v in params.values())
    batch, targets = make_data(cfg, 3, seed=4)
    ref = reference_forward_backward(cfg, params, batch, targets)
    assert (ref.aux_loss > 0) == (cfg.aux_loss_coeff > 0)
    rng = np.random.default_rng(5)
    eps = 1e-5
    for name, value in params.items():
        v = rng.standard_normal(value.shape)
        objective = []
        for sign in (1.0, -1.0):
            moved = dict(params)
            moved[name] = value + sign * eps * v
            r = reference_forward_backward(cfg, moved, batch, targets)
            objective.append(r.loss + r.aux_loss)
        numeric = (objective[0] - objective[1]) / (2 * eps)
        analytic = float(np.sum(ref.grads[name] * v))
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9), name


def test_uniform_routing_gives_an_aux_loss_of_alpha():
    """f_e = P_e = 1/E... scaled so that perfectly balanced routing costs α."""
    cfg = ModelConfig(layers=1, hidden=4, heads=2, seq=4, experts=4, top_k=2, aux_loss_coeff=0.5)
    params = init_params(cfg, 0)
    params["layers.0.moe.router.weight"][...] = 0.0  # every probability 1/4; top-2 by index
    batch, targets = make_data(cfg, 2, seed=1)
    ref = reference_forward_backward(cfg, params, batch, targets)
    # experts 0 and 1 take every token: f = (E/(k s)) · s = 2 for them, P_e = 1/4 each
    assert ref.aux_loss == pytest.approx(0.5 * (2 * 0.25 + 2 * 0.25))


def test_router_picks_the_top_k_with_ties_to_the_lower_index():
    x = np.eye(3)
    w = np.array([[1.0, 3.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0], [5.0, 1.0, 5.0, 2.0]])
    r = route(x, w, 2, True)
    assert r.experts.tolist() == [[1, 2], [0, 1], [0, 2]]
    np.testing.assert_allclose(r.weights.sum(axis=1), 1.0)
    dz = route_backward(np.ones((3, 2)), r)  # normalised weights sum to 1: no gradient
    np.testing.assert_allclose(dz, 0.0, atol=1e-15)


@pytest.mark.parametrize("name,released,rel", [("mixtral-8x7b", 46_702_792_704, 0),
                                               ("qwen3-30b-a3b", 30_532_122_624, 1e-6),
                                               ("mixtral-8x22b", 141e9, 5e-3),
                                               ("deepseek-v3-like", 671e9, 6e-3)])
def test_moe_presets_count_the_released_checkpoints(name, released, rel):
    """Safetensors totals of mistralai/Mixtral-8x7B-v0.1 (exact) and Qwen/Qwen3-30B-A3B
    (whose per-head q/k norms, 256 weights a layer, are not modelled); the rounded totals
    of the Mixtral-8x22B model card (141B) and the DeepSeek-V3 report (671B, whose MLA
    the preset simplifies)."""
    from ringpipe.model.presets import model_preset

    assert model_preset(name).total_params == pytest.approx(released, rel=rel)


def test_the_numpy_model_refuses_what_it_does_not_build():
    cfg = ModelConfig(layers=1, hidden=8, heads=2, head_dim=8)
    with pytest.raises(ValueError, match="head_dim=8"):
        param_shapes(cfg)
    with pytest.raises(ValueError, match="experts must be 0"):
        ModelConfig(experts=1)
    with pytest.raises(ValueError, match="top_k=5 exceeds experts=4"):
        ModelConfig(experts=4, top_k=5)
    with pytest.raises(ValueError, match="dense_layers=2 leaves no MoE layer"):
        ModelConfig(layers=2, experts=4, dense_layers=2)
