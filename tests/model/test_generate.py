"""Grouped-query attention, the KV cache, the greedy reference and TP/PP inference stages."""

import numpy as np
import pytest
from stage_helpers import Counter

from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig, init_params, reference_forward_backward
from ringpipe.model.generate import generate
from ringpipe.model.inference_stage import (
    InferenceSpec,
    inference_shards,
    qkv_columns,
    stage_step,
)
from ringpipe.model.kv_cache import KVCache
from ringpipe.model.stage_spec import StageSpec
from ringpipe.plan.training import Plan
from ringpipe.verify.training import verify_plan


def rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _mha_params(gqa_cfg, params):
    """The GQA model's weights written as a multi-head model (K/V columns repeated)."""
    mha = ModelConfig(**{**gqa_cfg.__dict__, "kv_heads": gqa_cfg.heads})
    d, r, kv = gqa_cfg.head_dim, gqa_cfg.group_size, gqa_cfg.kv_heads
    cols = []
    for h in range(gqa_cfg.heads):
        g = h // r
        base = g * (r + 2) * d
        cols += [base + (h - g * r) * d + c for c in range(d)]
        cols += [base + r * d + c for c in range(d)]
        cols += [base + (r + 1) * d + c for c in range(d)]
    out = dict(params)
    for i in range(gqa_cfg.layers):
        out[f"layers.{i}.attn.qkv.weight"] = params[f"layers.{i}.attn.qkv.weight"][:, cols]
        out[f"layers.{i}.attn.qkv.bias"] = params[f"layers.{i}.attn.qkv.bias"][cols]
    assert len(cols) == 3 * gqa_cfg.hidden and kv < gqa_cfg.heads
    return mha, out, np.asarray(cols)


def test_gqa_reference_equals_mha_with_repeated_kv():
    cfg = ModelConfig(layers=2, hidden=16, heads=4, kv_heads=2, seq=6, vocab=23)
    params = init_params(cfg, 3)
    assert params["layers.0.attn.qkv.weight"].shape == (16, (4 + 2 * 2) * 4)
    assert cfg.num_params() == sum(v.size for v in params.values())
    mha, mparams, cols = _mha_params(cfg, params)
    rng = np.random.default_rng(1)
    ids, tgt = rng.integers(0, 23, (3, 6)), rng.integers(0, 23, (3, 6))
    got = reference_forward_backward(cfg, params, ids, tgt)
    want = reference_forward_backward(mha, mparams, ids, tgt)
    assert rel(got.output, want.output) < 1e-13
    # GQA's K/V gradient is the sum over the query heads that share the head
    for i in range(2):
        name = f"layers.{i}.attn.qkv.weight"
        summed = np.zeros_like(got.grads[name])
        np.add.at(summed.T, cols, want.grads[name].T)
        assert rel(got.grads[name], summed) < 1e-12


@pytest.mark.parametrize("tp,kv", [(2, 2), (2, 4)])
def test_gqa_training_plan_matches_reference(tp, kv):
    cfg = ModelConfig(layers=2, hidden=16, heads=4, kv_heads=kv, seq=4, vocab=11)
    report = verify_plan(Plan(cfg, Mesh(dp=1, pp=2, tp=tp), microbatches=2), backend="numpy")
    assert report.ok, report.errors


def test_training_refuses_tp_above_kv_heads_but_inference_replicates():
    cfg = ModelConfig(layers=1, hidden=16, heads=4, kv_heads=1, vocab=7)
    with pytest.raises(ValueError, match="kv_heads=1 does not fit tp=2"):
        cfg.check_tp(2)
    cfg.check_tp(2, replicate_kv=True)
    with pytest.raises(ValueError, match="kv_heads=3"):
        ModelConfig(hidden=24, heads=6, kv_heads=3, vocab=5).check_tp(2, replicate_kv=True)
    with pytest.raises(ValueError, match="kv_heads=3 does not divide"):
        ModelConfig(hidden=16, heads=4, kv_heads=3)


def test_qkv_columns_split_or_replicate_kv_heads():
    cfg = ModelConfig(layers=1, hidden=8, heads=4, kv_heads=2, vocab=5)  # d=2, r=2
    # tp=2 divides kv: the contiguous training block of one whole group each
    assert qkv_columns(cfg, 2, 1).tolist() == list(range(8, 16))
    # tp=4 > kv=2: rank 0 and 1 share group 0's k/v columns (4..7), queries differ
    assert qkv_columns(cfg, 4, 0).tolist() == [0, 1, 4, 5, 6, 7]
    assert qkv_columns(cfg, 4, 1).tolist() == [2, 3, 4, 5, 6, 7]
    assert qkv_columns(cfg, 4, 3).tolist() == [10, 11, 12, 13, 14, 15]


def test_kv_cache_append_views_and_overflow():
    cache = KVCache.allocate(2, batch=3, kv_heads=2, head_dim=4, capacity=5,
                             dtype=np.dtype(np.float64))
    assert cache.nbytes == 2 * 2 * 3 * 2 * 5 * 4 * 8
    k = np.arange(3 * 2 * 4 * 4, dtype=float).reshape(3, 2, 4, 4)
    keys, values = cache.append(1, k, -k)
    assert keys.shape == (3, 2, 4, 4) and np.array_equal(keys, k) and cache.lengths == [0, 4]
    with pytest.raises(ValueError, match="holds 4 of 5 positions; 2 more do not fit"):
        cache.append(1, k[:, :, :2], k[:, :, :2])
    with pytest.raises(ValueError, match="must be"):
        cache.append(0, k[:, :1], k[:, :1])


def _config(**kw):
    base = dict(layers=3, hidden=16, heads=4, kv_heads=2, seq=5, vocab=29)
    return ModelConfig(**{**base, **kw})


@pytest.mark.parametrize("kv", [4, 2, 1])
def test_generate_logits_equal_full_forward_without_cache(kv):
    cfg = _config(kv_heads=kv)
    params = init_params(cfg, 0)
    prompts = np.random.default_rng(2).integers(0, 29, (2, 5))
    out = generate(cfg, params, prompts, 4)
    assert out.tokens.shape == (2, 4) and out.logits.shape == (2, 4, 29)
    assert np.array_equal(out.tokens, out.logits.argmax(-1))
    seqs = np.concatenate([prompts, out.tokens], axis=1)
    for k in range(4):
        n = 5 + k
        full = ModelConfig(**{**cfg.__dict__, "seq": n})
        ref = reference_forward_backward(full, params, seqs[:, :n], seqs[:, :n]).output
        assert rel(out.logits[:, k], ref[:, -1]) < 1e-12


def test_generate_float32_and_argument_checks():
    cfg64, cfg32 = _config(), _config(dtype="float32")
    prompts = np.random.default_rng(3).integers(0, 29, (2, 4))
    a = generate(cfg64, init_params(cfg64, 1), prompts, 3)
    b = generate(cfg32, init_params(cfg32, 1), prompts, 3)
    assert b.logits.dtype == np.float32 and rel(b.logits[:, 0], a.logits[:, 0]) < 1e-4
    with pytest.raises(ValueError, match="new_tokens must be >= 1"):
        generate(cfg64, init_params(cfg64, 1), prompts, 0)
    with pytest.raises(ValueError, match=r"prompts token ids must lie in \[0, vocab=29\)"):
        generate(cfg64, init_params(cfg64, 1), prompts + 29, 1)
    with pytest.raises(ValueError, match="vocab must be > 0"):
        generate(ModelConfig(), init_params(ModelConfig(), 0), prompts, 1)


def _run_stages(cfg, params, prompts, new_tokens, tp, bounds):
    """Greedy generation through per-stage TP lists, as the runtime composes them."""
    shards = inference_shards(cfg, params, tp)
    specs = [InferenceSpec(cfg, a, b, tp) for a, b in bounds]
    b, length = prompts.shape
    caches = [s.allocate(b, length + new_tokens - 1) for s in specs]
    counter = Counter()
    ids, logits = prompts, []
    for _ in range(new_tokens):
        xs = [ids] * tp
        for spec, cache in zip(specs, caches, strict=True):
            xs = stage_step(spec, shards, xs, cache, counter)
        assert all(np.array_equal(x, xs[0]) for x in xs)
        logits.append(xs[0])
        ids = xs[0].argmax(-1).reshape(b, 1)
    return np.stack(logits, 1), caches, counter


@pytest.mark.parametrize("tp,kv", [(1, 2), (2, 2), (2, 4), (4, 2), (4, 1)])
def test_tp_pp_stages_match_reference(tp, kv):
    cfg = _config(kv_heads=kv)
    params = init_params(cfg, 5)
    prompts = np.random.default_rng(4).integers(0, 29, (3, 4))
    ref = generate(cfg, params, prompts, 3)
    logits, caches, counter = _run_stages(cfg, params, prompts, 3, tp, [(0, 1), (1, 3)])
    assert np.array_equal(logits.argmax(-1), ref.tokens)
    assert rel(logits, ref.logits) < 1e-10
    assert counter.calls == 3 * cfg.layers * 2  # two g all-reduces per block per step
    # KV sharded by heads across tp (replicated past kv_heads) and by layers across pp
    kv_here = max(kv // tp, 1)
    for cache, layers in zip(caches, (1, 2), strict=True):
        for c in cache:
            assert c.nbytes == 2 * layers * 3 * kv_here * 4 * (4 + 3 - 1) * 8
            assert c.lengths == [4 + 3 - 1] * layers


def test_tp1_single_stage_is_bitwise_the_reference():
    cfg = _config()
    params = init_params(cfg, 6)
    prompts = np.random.default_rng(5).integers(0, 29, (2, 3))
    ref = generate(cfg, params, prompts, 3)
    logits, _, _ = _run_stages(cfg, params, prompts, 3, 1, [(0, 3)])
    assert np.array_equal(logits, ref.logits)


def test_inference_spec_checks():
    with pytest.raises(ValueError, match="vocab must be > 0"):
        InferenceSpec(ModelConfig(), 0, 1)
    with pytest.raises(ValueError, match="last <= layers=3"):
        InferenceSpec(_config(), 0, 4)
    with pytest.raises(TypeError, match="tp must be an int"):
        InferenceSpec(_config(), 0, 1, tp=2.0)
    with pytest.raises(ValueError, match="kv_heads=2 does not fit tp=4"):
        StageSpec(_config(), 0, 1, tp=4)  # training splits K/V heads; inference replicates
    assert InferenceSpec(_config(), 0, 1, tp=4).kv_heads_here == 1


def test_stage_step_checks_shards_and_caches_before_computing():
    cfg = _config()
    spec = InferenceSpec(cfg, 0, 1, 2)
    shards = inference_shards(cfg, init_params(cfg, 0), 2)
    caches = spec.allocate(1, 4)
    ids = [np.zeros((1, 2), dtype=np.int64)] * 2
    bad = [dict(shards[0]), shards[1]]
    bad[0]["layers.0.attn.qkv.weight"] = bad[0]["layers.0.attn.qkv.weight"][:, :-1]
    with pytest.raises(ValueError, match=r"shards\[0\]\['layers.0.attn.qkv.weight'\]"):
        stage_step(spec, bad, ids, caches, Counter())
    with pytest.raises(ValueError, match=r"caches\[1\] must be a KVCache of 1 layers"):
        stage_step(spec, shards, ids, [caches[0], None], Counter())
    assert caches[0].lengths == [0]
