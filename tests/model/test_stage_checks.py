"""StageSpec validation and bad stage inputs: named errors before anything runs."""

import numpy as np
import pytest
from stage_helpers import Counter, make_data

from ringpipe.model import (
    ModelConfig,
    StageSpec,
    init_params,
    shard_params,
    stage_backward_input,
    stage_backward_weight,
    stage_forward,
)


def test_stage_spec_validation_and_params():
    cfg = ModelConfig(layers=3, hidden=8, heads=2, vocab=5)
    spec = StageSpec(cfg, 1, 3, tp=2)
    assert not spec.is_first and spec.is_last
    names = list(spec.param_shapes())
    assert names[0] == "layers.1.norm1.weight" and names[-1] == "head.bias"
    assert spec.param_shapes()["layers.1.attn.qkv.weight"] == (8, 12)
    assert "embed.weight" in StageSpec(cfg, 0, 1).param_shapes()
    for first, last in ((1, 1), (2, 1), (0, 4), (-1, 2)):
        with pytest.raises(ValueError, match="first"):
            StageSpec(cfg, first, last)
    # a stage may hold the embedding alone or the head alone, never nothing
    alone = StageSpec(cfg, 0, 0)
    assert alone.is_first and not alone.is_last
    assert list(alone.param_shapes()) == ["embed.weight"]
    assert list(StageSpec(cfg, 3, 3).param_shapes())[-1] == "head.bias"
    assert not StageSpec(cfg, 0, 1, embedding=False).param_shapes().get("embed.weight")
    with pytest.raises(ValueError, match="embedding feeds layer 0"):
        StageSpec(cfg, 1, 2, embedding=True)
    with pytest.raises(ValueError, match="head follows layer 2"):
        StageSpec(cfg, 1, 2, head=True)
    with pytest.raises(ValueError, match="neither the embedding nor the head"):
        StageSpec(cfg, 0, 0, embedding=False)
    with pytest.raises(ValueError, match="heads"):
        StageSpec(cfg, 0, 1, tp=4)
    with pytest.raises(TypeError, match="config"):
        StageSpec("cfg", 0, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="first"):
        StageSpec(cfg, 0.0, 1)  # type: ignore[arg-type]


def test_bad_stage_inputs_raise():
    cfg = ModelConfig(layers=2, hidden=8, heads=2, seq=4, vocab=5)
    shards = shard_params(cfg, init_params(cfg, 0), 2)
    batch, targets = make_data(cfg, 2)
    first, last, whole = StageSpec(cfg, 0, 1, 2), StageSpec(cfg, 1, 2, 2), StageSpec(cfg, 0, 2, 2)
    ar = Counter()
    act = [np.zeros((2, 4, 8))] * 2
    with pytest.raises(ValueError, match="xs"):
        stage_forward(first, shards, [batch], ar)
    with pytest.raises(ValueError, match="xs"):
        stage_forward(last, shards, [np.zeros((2, 4, 7))] * 2, ar, targets)
    with pytest.raises(TypeError, match="xs"):
        stage_forward(last, shards, [a.astype(np.float32) for a in act], ar, targets)
    with pytest.raises(ValueError, match="targets"):
        stage_forward(last, shards, act, ar)
    with pytest.raises(ValueError, match="targets"):
        stage_forward(first, shards, [batch] * 2, ar, targets)
    with pytest.raises(ValueError, match="loss_scale"):
        stage_forward(whole, shards, [batch] * 2, ar, targets, loss_scale=0.0)
    with pytest.raises(TypeError, match="all_reduce"):
        stage_forward(first, shards, [batch] * 2, "ring")
    bad = [dict(s) for s in shards]
    bad[1]["layers.0.mlp.fc1.weight"] = bad[1]["layers.0.mlp.fc1.weight"][:, :4]
    with pytest.raises(ValueError, match=r"shards\[1\].*fc1.weight"):
        stage_forward(first, bad, [batch] * 2, ar)
    with pytest.raises(ValueError, match="shards"):
        stage_forward(first, shards[:1], [batch] * 2, ar)
    with pytest.raises(TypeError, match="spec"):
        stage_forward(None, shards, [batch] * 2, ar)  # type: ignore[arg-type]
    loss, cache = stage_forward(whole, shards, [batch] * 2, ar, targets)
    with pytest.raises(ValueError, match="dys"):
        stage_backward_input(whole, cache, act, ar)
    ys, cache = stage_forward(first, shards, [batch] * 2, ar)
    with pytest.raises(ValueError, match="dys"):
        stage_backward_input(first, cache, [np.zeros((3, 4, 8))] * 2, ar)
    with pytest.raises(ValueError, match="cache"):
        stage_backward_input(last, cache, act, ar)
    _, wcache = stage_backward_input(first, cache, ys, ar)
    with pytest.raises(ValueError, match="wcache"):
        stage_backward_weight(last, wcache)
