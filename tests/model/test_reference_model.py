"""The single-device reference model: finite-difference gradient checks and sanity."""

import math

import numpy as np
import pytest
from stage_helpers import make_data

from ringpipe.model import ModelConfig, init_params, reference_forward_backward
from ringpipe.model import functional as F

CONFIGS = [
    dict(vocab=0, block="transformer", norm="rmsnorm"),
    dict(vocab=7, block="transformer", norm="layernorm"),
    dict(vocab=7, block="mlp", norm="rmsnorm"),
    dict(vocab=0, block="mlp", norm="layernorm"),
]


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: "-".join(map(str, kw.values())))
def test_gradients_match_central_differences(kw):
    """For every parameter, <grad, v> matches (L(p + e v) - L(p - e v)) / 2e along a
    random direction v (float64, e = 1e-5): catches any wrong entry of any gradient."""
    cfg = ModelConfig(layers=2, hidden=8, heads=2, seq=4, ffn=12, **kw)
    params = init_params(cfg, seed=3)
    batch, targets = make_data(cfg, 2, seed=4)
    ref = reference_forward_backward(cfg, params, batch, targets)
    rng = np.random.default_rng(5)
    eps = 1e-5
    for name, value in params.items():
        v = rng.standard_normal(value.shape)
        losses = []
        for sign in (1.0, -1.0):
            moved = dict(params)
            moved[name] = value + sign * eps * v
            losses.append(reference_forward_backward(cfg, moved, batch, targets).loss)
        numeric = (losses[0] - losses[1]) / (2 * eps)
        analytic = float(np.sum(ref.grads[name] * v))
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9), name


def test_elementwise_gradients_of_one_layer():
    """A few single entries of the qkv and fc1 weights, checked one at a time."""
    cfg = ModelConfig(layers=1, hidden=4, heads=2, seq=3, vocab=5)
    params = init_params(cfg, seed=0)
    batch, targets = make_data(cfg, 2, seed=1)
    ref = reference_forward_backward(cfg, params, batch, targets)
    eps = 1e-6
    for name, idx in [("layers.0.attn.qkv.weight", (1, 5)), ("layers.0.attn.qkv.bias", (10,)),
                      ("layers.0.mlp.fc1.weight", (3, 7)), ("embed.weight", (int(batch[0, 0]), 2))]:
        up, down = dict(params), dict(params)
        up[name] = params[name].copy()
        down[name] = params[name].copy()
        up[name][idx] += eps
        down[name][idx] -= eps
        numeric = (reference_forward_backward(cfg, up, batch, targets).loss
                   - reference_forward_backward(cfg, down, batch, targets).loss) / (2 * eps)
        assert ref.grads[name][idx] == pytest.approx(numeric, rel=1e-6, abs=1e-10), name


def test_result_shapes_names_and_scale():
    cfg = ModelConfig(layers=2, hidden=8, heads=2, seq=4, vocab=11)
    params = init_params(cfg, seed=0)
    batch, targets = make_data(cfg, 3, seed=0)
    ref = reference_forward_backward(cfg, params, batch, targets)
    assert ref.output.shape == (3, 4, 11)
    assert list(ref.grads) == list(params)
    assert all(ref.grads[n].shape == params[n].shape for n in params)
    assert abs(ref.loss - math.log(11)) < 1.0  # near-uniform predictions at init
    dense = ModelConfig(layers=1, hidden=8, heads=2, seq=4)
    p = init_params(dense, seed=0)
    x, y = make_data(dense, 2, seed=0)
    out = reference_forward_backward(dense, p, x, y)
    assert out.output.shape == (2, 4, 8)
    assert out.loss == pytest.approx(np.mean((out.output - y) ** 2), rel=1e-12)


def test_attention_is_causal():
    """Changing a later position's input leaves earlier positions' outputs unchanged."""
    cfg = ModelConfig(layers=2, hidden=8, heads=2, seq=5)
    params = init_params(cfg, seed=0)
    x, y = make_data(cfg, 1, seed=0)
    base = reference_forward_backward(cfg, params, x, y).output
    x2 = x.copy()
    x2[0, 3] += 1.0
    moved = reference_forward_backward(cfg, params, x2, y).output
    assert np.array_equal(base[0, :3], moved[0, :3])
    assert not np.allclose(base[0, 3:], moved[0, 3:])


def test_gelu_is_the_tanh_approximation():
    x = np.linspace(-4, 4, 17)
    y, _ = F.gelu_forward(x)
    want = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(y, want, rtol=1e-15, atol=1e-15)


def test_float32_run_is_close_to_float64():
    kw = dict(layers=2, hidden=16, heads=4, seq=8, vocab=13)
    c64, c32 = ModelConfig(**kw), ModelConfig(dtype="float32", **kw)
    batch, targets = make_data(c64, 2, seed=2)
    r64 = reference_forward_backward(c64, init_params(c64, 9), batch, targets)
    r32 = reference_forward_backward(c32, init_params(c32, 9), batch, targets)
    assert r32.output.dtype == np.float32
    assert r32.loss == pytest.approx(r64.loss, rel=1e-5)
    for name, g in r64.grads.items():
        assert r32.grads[name].dtype == np.float32
        err = np.max(np.abs(r32.grads[name] - g)) / np.max(np.abs(g))
        assert err < 1e-4, name


def test_bad_inputs_raise():
    cfg = ModelConfig(layers=1, hidden=8, heads=2, seq=4, vocab=5)
    params = init_params(cfg, seed=0)
    batch, targets = make_data(cfg, 2, seed=0)
    with pytest.raises(ValueError, match="batch"):
        reference_forward_backward(cfg, params, batch[:, :3], targets)
    with pytest.raises(ValueError, match="vocab"):
        reference_forward_backward(cfg, params, batch + 5, targets)
    with pytest.raises(TypeError, match="batch"):
        reference_forward_backward(cfg, params, batch.astype(float), targets)
    with pytest.raises(ValueError, match="targets"):
        reference_forward_backward(cfg, params, batch, targets[:1])
    bad = dict(params)
    bad["head.weight"] = bad["head.weight"][:, :4]
    with pytest.raises(ValueError, match="head.weight"):
        reference_forward_backward(cfg, bad, batch, targets)
    bad = dict(params)
    del bad["layers.0.norm1.weight"]
    with pytest.raises(ValueError, match="norm1"):
        reference_forward_backward(cfg, bad, batch, targets)
    bad = dict(params)
    bad["head.bias"] = bad["head.bias"].astype(np.float32)
    with pytest.raises(TypeError, match="head.bias"):
        reference_forward_backward(cfg, bad, batch, targets)
