"""Context and expert parallelism with ``Plan.run(backend="cupy")`` on the emulated device
(``tests/helpers/emulated_device``: as strict as CuPy about host and device arrays):
bitwise equal to ``backend="numpy"``, the all-to-all and the CP ring staying on the
device."""

import pytest
from emulated_gpu import emulated_gpu

import ringpipe.collectives.api
import ringpipe.runtime.inproc
from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig, init_params
from ringpipe.plan.training import Plan
from ringpipe.verify import compare_runs, random_batch


@pytest.fixture
def gpu(monkeypatch):
    device = emulated_gpu()
    monkeypatch.setattr(ringpipe.collectives.api, "gpu_arrays", lambda where: device)
    monkeypatch.setattr(ringpipe.runtime.inproc, "gpu_arrays", lambda where: device)
    return device


@pytest.mark.parametrize("model,mesh", [
    (dict(vocab=11), Mesh(pp=2, tp=2, cp=2)),
    (dict(experts=4, top_k=2, moe_ffn=8, aux_loss_coeff=0.01, shared_experts=1),
     Mesh(dp=2, tp=2, ep=2)),
], ids=["cp2", "ep2"])
def test_device_run_is_bitwise_the_host_run(gpu, model, mesh):
    cfg = ModelConfig(layers=2, hidden=16, heads=4, seq=8, **model)
    plan = Plan(cfg, mesh, microbatches=2)
    params, batch = init_params(cfg, 0), random_batch(cfg, 2 * mesh.dp * 2, 1)
    diff = compare_runs(plan.run(params, batch, backend="cupy"),
                        plan.run(params, batch, backend="numpy"))
    assert diff.bitwise and diff.counters_equal, diff.describe()
