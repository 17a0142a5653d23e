"""``Plan.run(backend="cupy")``: shards, activations and all-reduces on the device.

CI has no GPU, so the device here is the emulated one of ``emulated_device``: it is as
strict as CuPy about keeping host and device arrays apart (mixing them, or converting
a device array to NumPy implicitly, raises TypeError), and its "kernel" runs the step
table with the NumPy executor. A plan that runs there keeps everything on the device
and copies back only explicitly; since the emulated device computes with NumPy, the
result must equal ``backend="numpy"`` bit for bit. The real CUDA kernel is covered by
``tests/gpu/sim/sim_plan.py`` (CUDA simulator) and ``tests/gpu/test_gpu_device.py`` (GPU).
"""

import numpy as np
import pytest
from emulated_device import EMULATED, DeviceArray, HostDeviceMix
from emulated_gpu import emulated_gpu

import ringpipe.collectives.api
import ringpipe.runtime.inproc
from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig, init_params
from ringpipe.model import functional as F
from ringpipe.model.sharding import shard_params
from ringpipe.model.stage import StageSpec, stage_forward
from ringpipe.plan.training import Plan
from ringpipe.verify.training import random_batch, verify_plan


@pytest.fixture
def gpu(monkeypatch):
    """backend "cupy" resolves to the emulated device for this test."""
    device = emulated_gpu()
    monkeypatch.setattr(ringpipe.collectives.api, "gpu_arrays", lambda where: device)
    monkeypatch.setattr(ringpipe.runtime.inproc, "gpu_arrays", lambda where: device)
    return device


CASES = {
    # name: (model kwargs, mesh, schedule, microbatches, allreduce)
    "tokens-1f1b-tp2pp2dp2": (dict(layers=2, vocab=13), (2, 2, 2), "1f1b", 3, "ring"),
    "dense-zbv-tp2pp2": (dict(layers=4), (1, 2, 2), "zb-v", 4, "tree"),
    "layernorm-interleaved-tp4pp2": (dict(layers=4, norm="layernorm"), (1, 2, 4),
                                     "interleaved-1f1b", 4, "ring"),
    "mlp-gpipe-tp2dp2": (dict(layers=2, block="mlp", vocab=7), (2, 1, 2), "gpipe", 2, "tree"),
    "float32-zbh1-tp2pp2dp2": (dict(layers=2, dtype="float32", vocab=9), (2, 2, 2), "zb-h1",
                               2, "ring"),
}


def _plan(case):
    kw, (dp, pp, tp), schedule, m, allreduce = CASES[case]
    cfg = ModelConfig(**{"hidden": 16, "heads": 4, "seq": 4, **kw})
    return Plan(cfg, Mesh(dp=dp, pp=pp, tp=tp), schedule=schedule, microbatches=m,
                allreduce=allreduce)


def test_the_emulated_device_is_as_strict_as_cupy():
    d = EMULATED.asarray(np.arange(6.0))
    with pytest.raises(HostDeviceMix):
        d + np.ones(6)
    with pytest.raises(HostDeviceMix):
        EMULATED.concatenate([d, np.ones(2)])
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(d)
    host = np.zeros(6)
    with pytest.raises(TypeError, match="Implicit conversion"):
        host[:] = d
    assert not hasattr(d.flags, "writeable")
    assert isinstance(d * 2 + 1, DeviceArray)
    assert EMULATED.asnumpy(d * 2).tolist() == [0, 2, 4, 6, 8, 10]


@pytest.mark.parametrize("case", sorted(CASES))
def test_plan_on_the_device_equals_the_host_run_bitwise(gpu, case):
    plan = _plan(case)
    params = init_params(plan.config, 3)
    batch = random_batch(plan.config, plan.mesh.dp * plan.microbatches * 2, 4)
    host = plan.run(params, batch, backend="numpy")
    dev = plan.run(params, batch, backend="cupy")
    assert dev.loss == host.loss
    assert type(dev.outputs) is np.ndarray
    assert dev.outputs.tobytes() == host.outputs.tobytes()
    assert list(dev.grads) == list(host.grads)
    for name, g in dev.grads.items():
        assert type(g) is np.ndarray, name
        assert g.tobytes() == host.grads[name].tobytes(), name
    assert dev.counters == host.counters
    assert {g.dtype for g in dev.grads.values()} == {plan.config.np_dtype}
    # every all-reduce of every TP and DP group ran as a device kernel
    assert len(gpu.launches) == dev.allreduce_calls > 0
    assert {c for c, _, _ in gpu.launches} == {"all_reduce"}


def test_verify_plan_on_the_device(gpu):
    report = verify_plan(_plan("tokens-1f1b-tp2pp2dp2"), backend="cupy", seed=5)
    assert report.ok and report.max_rel_error < 1e-10, report.errors


def test_caller_data_is_uploaded_not_aliased(gpu):
    plan = _plan("dense-zbv-tp2pp2")
    params = init_params(plan.config, 1)
    batch = random_batch(plan.config, plan.microbatches * 2, 2)
    before = {n: p.copy() for n, p in params.items()}
    inputs = batch.inputs.copy()
    plan.run(params, batch, backend="cupy")
    assert all(np.array_equal(params[n], before[n]) for n in params)
    assert np.array_equal(batch.inputs, inputs)


def _stage(tp=2):
    cfg = ModelConfig(layers=2, hidden=8, heads=2, seq=3)
    spec = StageSpec(cfg, 0, 1, tp)
    host = [spec.select(s) for s in shard_params(cfg, init_params(cfg, 0), tp)]
    dev = [{n: EMULATED.asarray(v) for n, v in s.items()} for s in host]
    x = np.random.default_rng(0).standard_normal((2, 3, 8))
    return spec, host, dev, x


def test_stage_refuses_host_inputs_with_device_shards():
    spec, _, dev, x = _stage()
    with pytest.raises(TypeError, match=r"xs\[0\] is a numpy.ndarray but the shards are "
                                        "emulated arrays"):
        stage_forward(spec, dev, [x, x], lambda bufs: None)


def test_stage_refuses_shards_split_between_host_and_device():
    spec, host, dev, x = _stage()
    with pytest.raises(TypeError, match=r"shards\[1\] holds numpy arrays but shards\[0\] "
                                        "holds emulated arrays"):
        stage_forward(spec, [dev[0], host[1]], [x, x], lambda bufs: None)
    mixed = dict(dev[0])
    name = next(iter(mixed))
    mixed[name] = host[0][name]
    with pytest.raises(TypeError, match="keep a shard on one device"):
        stage_forward(spec, [dict(dev[1]), mixed], [x, x], lambda bufs: None)


def test_plan_run_refuses_an_unknown_backend():
    plan = _plan("dense-zbv-tp2pp2")
    params = init_params(plan.config, 1)
    with pytest.raises(ValueError, match="unknown backend 'cuda'.*numpy, numba, cupy"):
        plan.run(params, random_batch(plan.config, 8, 0), backend="cuda")


@pytest.mark.parametrize("vocab", [0, 5])
def test_float32_stays_float32_with_large_counts(gpu, vocab):
    """Losses divide by the element / row count: at >= 2**16 a Python int would widen
    float32 to float64 under CuPy 13's value-based promotion (emulated here)."""
    cfg = ModelConfig(layers=1, hidden=8, heads=2, seq=64, vocab=vocab, block="mlp",
                      dtype="float32")
    plan = Plan(cfg, Mesh(tp=2), schedule="1f1b", microbatches=1)
    rows = (1 << 16) // cfg.seq if vocab else (1 << 16) // (cfg.seq * cfg.hidden)
    params, batch = init_params(cfg, 0), random_batch(cfg, rows, 1)
    dev = plan.run(params, batch, backend="cupy")
    host = plan.run(params, batch, backend="numpy")
    assert {g.dtype for g in dev.grads.values()} == {np.dtype(np.float32)}
    assert all(g.tobytes() == host.grads[n].tobytes() for n, g in dev.grads.items())


def test_device_to_host_syncs_per_micro_batch(gpu):
    """Dense model: the loss is the only device-to-host read of a micro-batch (once, not
    once per TP rank); then one download per DP gradient bucket and per output."""
    plan = _plan("dense-zbv-tp2pp2")
    params = init_params(plan.config, 1)
    batch = random_batch(plan.config, plan.microbatches * 2, 2)
    EMULATED.syncs.clear()
    plan.run(params, batch, backend="cupy")
    m, dp, pp, tp = plan.microbatches, plan.mesh.dp, plan.mesh.pp, plan.mesh.tp
    assert EMULATED.syncs.count("float") == dp * m
    assert EMULATED.syncs.count("asnumpy") == pp * tp + dp * m
    assert len(EMULATED.syncs) == dp * m + pp * tp + dp * m


def test_embedding_gradient_on_the_device_is_add_at_bitwise():
    rng = np.random.default_rng(0)
    ids = rng.choice(7, size=300, p=[0.5, 0.2, 0.1, 0.1, 0.05, 0.05, 0.0])  # heavy repeats
    dy = rng.standard_normal((300, 6)).astype(np.float32) * 1e3
    want = np.zeros((7, 6), np.float32)
    np.add.at(want, ids, dy)
    got = F.embedding_backward(EMULATED.asarray(ids), EMULATED.asarray(dy), 7)
    assert isinstance(got, DeviceArray)
    assert EMULATED.asnumpy(got).tobytes() == want.tobytes()
    sums = np.zeros((7, 6), np.float32)  # a different order gives different float32 bits
    for i in np.argsort(ids, kind="stable")[::-1]:
        sums[ids[i]] += dy[i]
    assert sums.tobytes() != want.tobytes()
