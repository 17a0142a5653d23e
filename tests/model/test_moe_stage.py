"""SwiGLU and MoE layers in tensor-parallel stages (ep = cp = 1), against the reference:
bitwise at tp = 1, within 1e-10 at tp = 2 and 4; the all-reduces each block makes."""

import numpy as np
import pytest
from stage_helpers import Counter, make_data

from ringpipe.model import (
    ModelConfig,
    StageSpec,
    gather_grads,
    init_params,
    reference_forward_backward,
    shard_params,
    stage_backward,
    stage_forward,
)

CONFIGS = {
    "swiglu": dict(gated_mlp=True),
    "moe": dict(experts=4, top_k=2, moe_ffn=8, aux_loss_coeff=0.01),
    "moe-shared-dense-first": dict(experts=4, top_k=2, moe_ffn=8, shared_experts=1,
                                   dense_layers=1, gated_mlp=True, vocab=11),
    "moe-top1-mlp-block": dict(experts=2, top_k=1, moe_ffn=8, moe_norm_topk=False,
                               block="mlp"),
}


def rel_err(got, want):
    scale = np.max(np.abs(want))
    return float(np.max(np.abs(got - want)) / scale) if scale else float(np.max(np.abs(got)))


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("tp", [1, 2, 4])
def test_stage_chain_matches_reference(name, tp):
    cfg = ModelConfig(layers=3, hidden=16, heads=4, seq=6, ffn=24, **CONFIGS[name])
    params = init_params(cfg, seed=1)
    batch, targets = make_data(cfg, 3)
    ref = reference_forward_backward(cfg, params, batch, targets)
    shards = shard_params(cfg, params, tp)
    specs = [StageSpec(cfg, 0, 1, tp), StageSpec(cfg, 1, 3, tp)]
    counter = Counter()
    xs, caches = [batch] * tp, []
    for spec in specs:
        xs, cache = stage_forward(spec, [spec.select(s) for s in shards], xs, counter,
                                  targets if spec.is_last else None, 1.0)
        caches.append(cache)
    loss = xs
    forward_calls = counter.calls
    aux = sum(c.aux[0] for c in caches)
    grads, dys = [{} for _ in range(tp)], None
    for spec, cache in zip(reversed(specs), reversed(caches), strict=True):
        dys, g = stage_backward(spec, cache, dys, counter)
        for t in range(tp):
            grads[t].update(g[t])
    full = gather_grads(cfg, grads, tp, check_replicated=True)
    assert list(full) == list(params)
    assert aux == pytest.approx(ref.aux_loss, rel=1e-12, abs=1e-300)
    assert abs(loss - ref.loss) <= 1e-10 * abs(ref.loss)
    for n in params:
        assert rel_err(full[n], ref.grads[n]) <= 1e-10, n
    moe = sum(cfg.is_moe_layer(i) for i in range(3))
    attention = 3 if cfg.has_attention else 0
    per_moe = 1 + (cfg.shared_experts > 0)
    if tp > 1:  # g per attention, g per dense MLP, expert outputs (+ shared) per MoE
        assert forward_calls == attention + (3 - moe) + moe * per_moe
        assert counter.calls - forward_calls == attention + 3
    if tp == 1:  # the reference's operations in the reference's order
        assert loss == ref.loss and aux == ref.aux_loss
        assert all(full[n].tobytes() == ref.grads[n].tobytes() for n in params)
