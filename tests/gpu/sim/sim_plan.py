"""``Plan.run(backend="cupy")`` under the CUDA simulator: every TP and DP all-reduce of
the plan runs through the CUDA step-table kernel, and the result equals the host run
bit for bit (the kernel is bitwise equal to the NumPy executor; the simulator's
"device" arrays are NumPy arrays, so the model maths is the host's)."""

import numpy as np
import pytest

import ringpipe.kernels.cuda.executor as cuda_exec
from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig, init_params
from ringpipe.plan.training import Plan
from ringpipe.verify.training import random_batch, verify_plan


@pytest.fixture
def launches(monkeypatch):
    seen = []
    real = cuda_exec.run_table_cuda

    def counting(table, *args, **kwargs):
        seen.append(table.name)
        return real(table, *args, **kwargs)

    monkeypatch.setattr(cuda_exec, "run_table_cuda", counting)
    return seen


@pytest.mark.parametrize("allreduce,schedule,dp,pp,tp,vocab", [
    ("ring", "1f1b", 2, 2, 2, 11),
    ("tree", "zb-v", 1, 2, 2, 0),
    ("tree", "gpipe", 2, 1, 3, 0),
])
def test_plan_through_the_cuda_kernel_equals_the_host_run(launches, allreduce, schedule, dp,
                                                          pp, tp, vocab):
    layers = 2 * pp if schedule == "zb-v" else pp
    cfg = ModelConfig(layers=layers, hidden=6 * tp, heads=tp, seq=3, vocab=vocab)
    plan = Plan(cfg, Mesh(dp=dp, pp=pp, tp=tp), schedule=schedule, microbatches=2,
                allreduce=allreduce)
    params = init_params(cfg, 0)
    batch = random_batch(cfg, dp * 2, 1)
    host = plan.run(params, batch, backend="numpy")
    sim = plan.run(params, batch, backend="cupy")
    assert len(launches) == sim.allreduce_calls > 0
    assert set(launches) == {f"{allreduce}_all_reduce"}
    assert sim.loss == host.loss
    assert sim.outputs.tobytes() == host.outputs.tobytes()
    for name, g in host.grads.items():
        assert np.asarray(sim.grads[name]).tobytes() == g.tobytes(), name


def test_verify_plan_on_the_simulated_gpu():
    cfg = ModelConfig(layers=2, hidden=8, heads=2, seq=3, dtype="float32", vocab=5)
    plan = Plan(cfg, Mesh(dp=2, pp=2, tp=2), schedule="zb-h1", microbatches=2)
    report = verify_plan(plan, backend="cupy", seed=2)
    assert report.ok, report.errors
