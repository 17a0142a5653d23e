"""Pipeline stages over a TP group, chained, against the single-device reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stage_helpers import Counter, make_data

import ringpipe
from ringpipe.model import (
    ModelConfig,
    StageSpec,
    gather_grads,
    init_params,
    reference_forward_backward,
    shard_params,
    stage_backward,
    stage_backward_input,
    stage_backward_weight,
    stage_forward,
)


def specs_for(cfg, bounds, tp):
    return [StageSpec(cfg, a, b, tp) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def run_chain(cfg, shards, batch, targets, specs, all_reduce, loss_scale=1.0, split=False):
    """One micro-batch through every stage forward, then backward; per-rank grads."""
    tp = specs[0].tp
    xs, caches = [batch] * tp, []
    for spec in specs:
        xs, cache = stage_forward(spec, [spec.select(s) for s in shards], xs, all_reduce,
                                  targets if spec.is_last else None, loss_scale)
        caches.append(cache)
    loss, grads, dys = xs, [{} for _ in range(tp)], None
    for spec, cache in zip(reversed(specs), reversed(caches), strict=True):
        if split:
            dys, wcache = stage_backward_input(spec, cache, dys, all_reduce)
            g = stage_backward_weight(spec, wcache)
        else:
            dys, g = stage_backward(spec, cache, dys, all_reduce)
        for t in range(tp):
            grads[t].update(g[t])
    assert dys is None
    return loss, caches[-1].output, grads


def rel_err(got, want):
    scale = np.max(np.abs(want))
    return float(np.max(np.abs(got - want)) / scale) if scale else float(np.max(np.abs(got)))


CONFIGS = {
    "dense-transformer-rms": dict(vocab=0, block="transformer", norm="rmsnorm"),
    "vocab-transformer-ln": dict(vocab=11, block="transformer", norm="layernorm"),
    "vocab-mlp-rms": dict(vocab=11, block="mlp", norm="rmsnorm"),
    "dense-mlp-ln": dict(vocab=0, block="mlp", norm="layernorm"),
}
SPLITS = [[0, 3], [0, 1, 3], [0, 1, 2, 3]]


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("tp", [1, 2, 4])
@pytest.mark.parametrize("bounds", SPLITS, ids=lambda b: f"{len(b) - 1}stages")
def test_stage_chain_matches_reference(name, tp, bounds):
    cfg = ModelConfig(layers=3, hidden=16, heads=4, seq=6, ffn=24, **CONFIGS[name])
    params = init_params(cfg, seed=1)
    batch, targets = make_data(cfg, 3)
    ref = reference_forward_backward(cfg, params, batch, targets)
    loss, output, grads = run_chain(cfg, shard_params(cfg, params, tp), batch, targets,
                                    specs_for(cfg, bounds, tp), Counter())
    full = gather_grads(cfg, grads, tp, check_replicated=True)
    assert list(full) == list(params)
    assert abs(loss - ref.loss) <= 1e-10 * abs(ref.loss)
    assert rel_err(output, ref.output) <= 1e-10
    for n in params:
        assert rel_err(full[n], ref.grads[n]) <= 1e-10, n
    if tp == 1:  # same operations in the same order: bitwise
        assert loss == ref.loss and output.tobytes() == ref.output.tobytes()
        assert all(full[n].tobytes() == ref.grads[n].tobytes() for n in params)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_tp1_single_stage_is_bitwise_reference(name):
    cfg = ModelConfig(layers=2, hidden=16, heads=4, seq=8, **CONFIGS[name])
    params = init_params(cfg, seed=7)
    batch, targets = make_data(cfg, 4, seed=3)
    ref = reference_forward_backward(cfg, params, batch, targets)
    loss, output, grads = run_chain(cfg, shard_params(cfg, params, 1), batch, targets,
                                    specs_for(cfg, [0, 2], 1), Counter())
    assert loss == ref.loss and output.tobytes() == ref.output.tobytes()
    assert all(grads[0][n].tobytes() == ref.grads[n].tobytes() for n in params)


@pytest.mark.parametrize("tp", [1, 2, 4])
def test_split_backward_is_bitwise_stage_backward_and_deterministic(tp):
    cfg = ModelConfig(layers=4, hidden=16, heads=4, seq=5, vocab=9, norm="layernorm")
    params = init_params(cfg, seed=2)
    shards = shard_params(cfg, params, tp)
    batch, targets = make_data(cfg, 2)
    specs = specs_for(cfg, [0, 1, 3, 4], tp)
    fused = run_chain(cfg, shards, batch, targets, specs, Counter())
    split = run_chain(cfg, shards, batch, targets, specs, Counter(), split=True)
    again = run_chain(cfg, shards, batch, targets, specs, Counter(), split=True)
    for other in (split, again):
        assert other[0] == fused[0] and other[1].tobytes() == fused[1].tobytes()
        for t in range(tp):
            assert list(other[2][t]) == list(fused[2][t])
            assert all(other[2][t][n].tobytes() == fused[2][t][n].tobytes()
                       for n in fused[2][t])


def test_weight_pass_can_run_late():
    """ZB-H1 runs W after other micro-batches' work: the W cache must not be disturbed."""
    cfg = ModelConfig(layers=2, hidden=8, heads=2, seq=4)
    params = init_params(cfg, 0)
    shards = shard_params(cfg, params, 2)
    spec = StageSpec(cfg, 0, 2, tp=2)
    (b0, t0), (b1, t1) = make_data(cfg, 2, seed=0), make_data(cfg, 2, seed=1)
    ar = Counter()
    _, c0 = stage_forward(spec, shards, [b0, b0], ar, t0)
    _, w0 = stage_backward_input(spec, c0, None, ar)
    _, c1 = stage_forward(spec, shards, [b1, b1], ar, t1)  # other work in between
    _, g1 = stage_backward(spec, c1, None, ar)
    late = stage_backward_weight(spec, w0)
    _, c0b = stage_forward(spec, shards, [b0, b0], ar, t0)
    _, now = stage_backward(spec, c0b, None, ar)
    assert all(late[t][n].tobytes() == now[t][n].tobytes() for t in range(2) for n in now[t])


@pytest.mark.parametrize("block, per_block", [("transformer", 2), ("mlp", 1)])
@pytest.mark.parametrize("tp", [1, 2])
def test_all_reduce_counts(block, per_block, tp):
    cfg = ModelConfig(layers=3, hidden=8, heads=2, seq=4, vocab=5, block=block)
    shards = shard_params(cfg, init_params(cfg, 0), tp)
    batch, targets = make_data(cfg, 2)
    for bounds in ([0, 3], [0, 2, 3]):
        xs, caches = [batch] * tp, []
        for spec in specs_for(cfg, bounds, tp):
            fwd = Counter()
            xs, cache = stage_forward(spec, shards, xs, fwd,
                                      targets if spec.is_last else None)
            assert fwd.calls == per_block * (spec.last - spec.first)
            caches.append((spec, cache))
        dys = None
        for spec, cache in reversed(caches):
            bwd_i, bwd_w = Counter(), Counter()
            dys, wcache = stage_backward_input(spec, cache, dys, bwd_i)
            stage_backward_weight(spec, wcache)
            assert bwd_i.calls == per_block * (spec.last - spec.first) and bwd_w.calls == 0


@pytest.mark.parametrize("tp", [1, 2])
def test_micro_batches_and_replicas_sum_to_reference(tp):
    """Uneven micro-batches over 2 DP replicas, each scaled by b_i / B."""
    cfg = ModelConfig(layers=2, hidden=8, heads=2, seq=4, vocab=7)
    params = init_params(cfg, 4)
    batch, targets = make_data(cfg, 6)
    ref = reference_forward_backward(cfg, params, batch, targets)
    shards = shard_params(cfg, params, tp)
    specs = specs_for(cfg, [0, 1, 2], tp)
    pieces = [(0, 1), (1, 3), (3, 5), (5, 6)]  # replica 0: first two, replica 1: last two
    loss, total = 0.0, None
    for lo, hi in pieces:
        part_loss, _, grads = run_chain(cfg, shards, batch[lo:hi], targets[lo:hi], specs,
                                        Counter(), loss_scale=(hi - lo) / 6)
        loss += part_loss
        full = gather_grads(cfg, grads, tp, check_replicated=True)
        total = full if total is None else {n: total[n] + full[n] for n in full}
    assert abs(loss - ref.loss) <= 1e-10 * abs(ref.loss)
    assert all(rel_err(total[n], ref.grads[n]) <= 1e-10 for n in params)


@pytest.mark.parametrize("algorithm", ["ring", "tree"])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("tp", [2, 4])
def test_with_ringpipe_all_reduce(algorithm, backend, tp):
    cfg = ModelConfig(layers=2, hidden=16, heads=4, seq=4, vocab=7)
    params = init_params(cfg, 5)
    batch, targets = make_data(cfg, 2)
    ref = reference_forward_backward(cfg, params, batch, targets)

    def all_reduce(bufs):
        ringpipe.all_reduce(bufs, algorithm=algorithm, backend=backend)

    loss, output, grads = run_chain(cfg, shard_params(cfg, params, tp), batch, targets,
                                    specs_for(cfg, [0, 1, 2], tp), all_reduce)
    full = gather_grads(cfg, grads, tp, check_replicated=True)
    assert abs(loss - ref.loss) <= 1e-10 * abs(ref.loss)
    assert rel_err(output, ref.output) <= 1e-10
    assert all(rel_err(full[n], ref.grads[n]) <= 1e-10 for n in params)


@pytest.mark.parametrize("tp", [1, 2, 4])
def test_float32_within_1e4(tp):
    cfg = ModelConfig(layers=2, hidden=16, heads=4, seq=8, vocab=13, dtype="float32")
    params = init_params(cfg, 6)
    batch, targets = make_data(cfg, 3)
    ref = reference_forward_backward(cfg, params, batch, targets)
    loss, output, grads = run_chain(cfg, shard_params(cfg, params, tp), batch, targets,
                                    specs_for(cfg, [0, 1, 2], tp), Counter())
    full = gather_grads(cfg, grads, tp, check_replicated=True)
    assert output.dtype == np.float32 and all(g.dtype == np.float32 for g in full.values())
    assert abs(loss - ref.loss) <= 1e-4 * abs(ref.loss)
    assert all(rel_err(full[n], ref.grads[n]) <= 1e-4 for n in params)


@settings(max_examples=12)
@given(tp=st.sampled_from([1, 2, 4]), layers=st.integers(1, 3), seq=st.integers(1, 5),
       batch=st.integers(1, 3), vocab=st.sampled_from([0, 6]),
       block=st.sampled_from(["transformer", "mlp"]),
       norm=st.sampled_from(["rmsnorm", "layernorm"]), cut=st.integers(0, 2),
       seed=st.integers(0, 1000))
def test_random_models_match_reference(tp, layers, seq, batch, vocab, block, norm, cut, seed):
    cfg = ModelConfig(layers=layers, hidden=8, heads=4, seq=seq, vocab=vocab, block=block,
                      norm=norm, ffn=8)
    bounds = sorted({0, min(cut, layers - 1) or layers, layers})
    params = init_params(cfg, seed)
    data, targets = make_data(cfg, batch, seed)
    ref = reference_forward_backward(cfg, params, data, targets)
    loss, output, grads = run_chain(cfg, shard_params(cfg, params, tp), data, targets,
                                    specs_for(cfg, bounds, tp), Counter())
    full = gather_grads(cfg, grads, tp, check_replicated=True)
    assert abs(loss - ref.loss) <= 1e-10 * abs(ref.loss)
    assert rel_err(output, ref.output) <= 1e-10
    assert all(rel_err(full[n], ref.grads[n]) <= 1e-10 for n in params)


def test_outputs_are_per_rank_and_inputs_untouched():
    cfg = ModelConfig(layers=2, hidden=8, heads=2, seq=4)
    shards = shard_params(cfg, init_params(cfg, 0), 2)
    batch, _ = make_data(cfg, 2)
    keep = batch.copy()
    ys, _ = stage_forward(StageSpec(cfg, 0, 1, 2), shards, [batch, batch], Counter())
    assert len(ys) == 2 and ys[0] is not ys[1] and np.array_equal(ys[0], ys[1])
    assert ys[0].shape == (2, 4, 8) and np.array_equal(batch, keep)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_tp1_with_ringpipe_all_reduce_is_bitwise(backend):
    """ringpipe.all_reduce over a one-rank group is the identity, so bitwise holds."""
    cfg = ModelConfig(layers=2, hidden=8, heads=2, seq=4, vocab=5)
    params = init_params(cfg, 0)
    batch, targets = make_data(cfg, 2)
    ref = reference_forward_backward(cfg, params, batch, targets)

    def all_reduce(bufs):
        ringpipe.all_reduce(bufs, algorithm="ring", backend=backend)

    loss, output, grads = run_chain(cfg, shard_params(cfg, params, 1), batch, targets,
                                    specs_for(cfg, [0, 1, 2], 1), all_reduce)
    assert loss == ref.loss and output.tobytes() == ref.output.tobytes()
    assert all(grads[0][n].tobytes() == ref.grads[n].tobytes() for n in params)
