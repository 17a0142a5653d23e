"""Plans on in-process ranks against the single-device reference."""

import itertools

import numpy as np
import pytest

from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig, init_params, reference_forward_backward
from ringpipe.plan.training import Batch, Plan, split_layers
from ringpipe.schedules import simulate
from ringpipe.verify.training import random_batch, verify_plan

SCHEDULES = ["gpipe", "1f1b", "zb-h1", "interleaved-1f1b", "zb-v", "dualpipev"]


def config(pp, schedule, dtype="float64", **kw):
    stages = pp * (2 if schedule in ("interleaved-1f1b", "zb-v", "dualpipev") else 1)
    base = dict(layers=stages, hidden=16, heads=4, seq=4, dtype=dtype)
    base.update(kw)
    return ModelConfig(**base)


def microbatches(pp, schedule):
    return 2 * pp if schedule in ("interleaved-1f1b", "dualpipev") else pp + 1


@pytest.mark.parametrize("tp,pp,dp", list(itertools.product([1, 2, 4], [1, 2, 4], [1, 2])))
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_float64_matches_reference(tp, pp, dp, schedule):
    allreduce = "tree" if (tp + pp + dp) % 2 else "ring"  # both algorithms, all shapes
    cfg = config(pp, schedule)
    plan = Plan(cfg, Mesh(dp=dp, pp=pp, tp=tp), schedule=schedule,
                microbatches=microbatches(pp, schedule), allreduce=allreduce)
    report = verify_plan(plan, backend="numba", seed=tp * 100 + pp * 10 + dp)
    assert report.ok, report.errors
    assert report.max_rel_error < 1e-10
    # the measured activation peak is the simulator's prediction, rank by rank
    assert report.result.peak_activations == list(simulate(plan.schedule).peak_activations)


@pytest.mark.parametrize("allreduce", ["ring", "tree"])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_float32_and_tokens(allreduce, schedule):
    cfg = config(2, schedule, dtype="float32", vocab=11, norm="layernorm")
    plan = Plan(cfg, Mesh(dp=2, pp=2, tp=2), schedule=schedule,
                microbatches=microbatches(2, schedule), allreduce=allreduce)
    report = verify_plan(plan, backend="numpy")
    assert report.ok and report.max_rel_error < 1e-4, report.errors


def test_mlp_block_and_uneven_layers():
    cfg = ModelConfig(layers=5, hidden=8, heads=2, seq=3, block="mlp")
    plan = Plan(cfg, Mesh(pp=3, tp=2), schedule="1f1b", microbatches=3,
                layers_per_stage=[1, 3, 1])
    assert [(s.first, s.last) for s in plan.stages] == [(0, 1), (1, 4), (4, 5)]
    assert verify_plan(plan).ok


def test_single_device_plan_is_bitwise_reference():
    cfg = ModelConfig(layers=3, hidden=16, heads=4, seq=5, vocab=7)
    params = init_params(cfg, 3)
    batch = random_batch(cfg, 4, 4)
    result = Plan(cfg, Mesh(), microbatches=1).run(params, batch)
    ref = reference_forward_backward(cfg, params, *batch)
    assert result.loss == ref.loss
    assert result.outputs.tobytes() == ref.output.tobytes()
    for name, g in ref.grads.items():
        assert result.grads[name].tobytes() == g.tobytes(), name


def test_runs_are_bitwise_reproducible():
    cfg = config(2, "zb-h1")
    plan = Plan(cfg, Mesh(dp=2, pp=2, tp=2), schedule="zb-h1", microbatches=3)
    params, batch = init_params(cfg, 0), random_batch(cfg, 12, 1)
    a, b = plan.run(params, batch), plan.run(params, batch)
    assert a.loss == b.loss and a.outputs.tobytes() == b.outputs.tobytes()
    assert all(a.grads[n].tobytes() == b.grads[n].tobytes() for n in a.grads)


def test_counters():
    cfg = config(2, "1f1b", layers=4)
    m, dp, pp, tp = 3, 2, 2, 2
    plan = Plan(cfg, Mesh(dp=dp, pp=pp, tp=tp), schedule="1f1b", microbatches=m)
    batch = random_batch(cfg, dp * m * 2, 0)
    res = plan.run(init_params(cfg, 0), batch)
    # 2 all-reduces per block forward and 2 backward, per micro-batch, per replica
    assert res.allreduce_ops("tp") == 4 * cfg.layers * m * dp
    assert res.allreduce_ops("dp") == pp * tp  # one gradient bucket per (pp, tp) position
    act = 2 * cfg.seq * cfg.hidden * 8  # one micro-batch's activation in bytes (b = 2)
    for c in res.counters:
        assert c.allreduce_calls["tp"] == 4 * 2 * m  # this rank's stage: 2 blocks
        assert c.bytes_sent["pp"] == m * act  # forward out of stage 0, gradient out of 1
        # ring of N=2: each rank sends 2(N-1)/N = 1 buffer per all-reduce
        assert c.bytes_sent["tp"] == 4 * 2 * m * act
    assert res.peak_activations == [2, 1]


@pytest.mark.parametrize("schedule,expected", [("gpipe", [4, 4]), ("1f1b", [2, 1])])
def test_peak_activations_gpipe_vs_1f1b(schedule, expected):
    cfg = config(2, schedule)
    plan = Plan(cfg, Mesh(pp=2), schedule=schedule, microbatches=4)
    assert plan.run(init_params(cfg, 0), random_batch(cfg, 8, 0)).peak_activations == expected


def test_bad_input():
    cfg = ModelConfig(layers=2, hidden=16, heads=4, seq=4)
    with pytest.raises(ValueError, match="hidden=16 is not divisible by tp=3"):
        Plan(cfg, Mesh(tp=3))
    with pytest.raises(ValueError, match="heads=4 is not divisible by tp=8"):
        Plan(ModelConfig(layers=2, hidden=32, heads=4, seq=4), Mesh(tp=8))
    with pytest.raises(ValueError, match="more pipeline stages \\(4\\) than layers \\(2\\)"):
        Plan(cfg, Mesh(pp=4), microbatches=4)
    with pytest.raises(ValueError, match="multiple of p"):
        Plan(ModelConfig(layers=4, hidden=16, heads=4, seq=4), Mesh(pp=2),
             schedule="interleaved-1f1b", microbatches=3)
    with pytest.raises(ValueError, match="unknown schedule"):
        Plan(cfg, Mesh(), schedule="pipedream")
    with pytest.raises(ValueError, match="sums to 3"):
        Plan(cfg, Mesh(pp=2), layers_per_stage=[1, 2])
    plan = Plan(cfg, Mesh(dp=2), microbatches=2)
    params = init_params(cfg, 0)
    with pytest.raises(ValueError, match="not divisible by dp × microbatches = 2 × 2 = 4"):
        plan.run(params, random_batch(cfg, 6, 0))
    bad = dict(params)
    bad["layers.0.mlp.fc1.weight"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match="layers.0.mlp.fc1.weight"):
        plan.run(bad, random_batch(cfg, 8, 0))
    with pytest.raises(TypeError, match="batch must be"):
        plan.run(params, [1, 2, 3])
    with pytest.raises(ValueError, match="unknown backend"):
        plan.run(params, random_batch(cfg, 8, 0), backend="cuda")


def test_split_layers():
    assert split_layers(7, 3) == (3, 2, 2)
    assert split_layers(4, 4) == (1, 1, 1, 1)
    assert split_layers(4, 2, [4, 0]) == (4, 0)  # the last stage holds the head alone
    with pytest.raises(ValueError, match="hold no layer"):
        split_layers(4, 3, [2, 0, 2])
    with pytest.raises(TypeError):
        split_layers(4, 2, "22")


def test_batch_type_is_a_tuple():
    cfg = ModelConfig(layers=1, hidden=8, heads=2, seq=2)
    b = random_batch(cfg, 2, 0)
    assert isinstance(b, Batch) and isinstance(b, tuple)


@pytest.mark.parametrize("schedule", ["interleaved-1f1b", "zb-v"])
def test_one_dp_bucket_per_position_even_with_several_stages_per_rank(schedule):
    cfg = config(2, schedule)
    plan = Plan(cfg, Mesh(dp=2, pp=2, tp=1), schedule=schedule, microbatches=2)
    res = plan.run(init_params(cfg, 0), random_batch(cfg, 4, 0))
    assert res.allreduce_ops("dp") == 2  # pp × tp positions, not stages
    assert [c.allreduce_calls["dp"] for c in res.counters] == [1, 1, 1, 1]
    assert verify_plan(plan).ok


def test_batch_smaller_than_dp_times_microbatches():
    plan = Plan(ModelConfig(layers=2, hidden=8, heads=2, seq=2), Mesh(dp=2), microbatches=2)
    for bad in (0, -4, 2):
        with pytest.raises(ValueError, match="smaller than dp × microbatches"):
            plan.check_batch_size(bad)
