"""Context and expert parallelism on both runtimes: in-process against the reference
(loss, outputs, every gradient, the MoE auxiliary loss within 1e-10 in float64) and the
numpy and numba backends bit for bit; MPI against in-process bit for bit and counter for
counter (one ``mpiexec`` job of 8 ranks through ``tests/helpers/parity_job.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig, init_params
from ringpipe.mpi.launch import launch
from ringpipe.plan.inference import InferencePlan
from ringpipe.plan.layout import PipelineLayout
from ringpipe.plan.serving import ServingPlan
from ringpipe.plan.training import Plan
from ringpipe.runtime.batching import BatchingPolicy, Request, StagePrice
from ringpipe.verify import compare_runs, random_batch, verify_plan

MOE = {"experts": 4, "top_k": 2, "moe_ffn": 8, "aux_loss_coeff": 0.01}

#: (name, mesh, schedule, micro-batches, model[, stage layout])
CASES = [
    ("cp2-tp2-pp2", dict(pp=2, tp=2, cp=2), "1f1b", 2, {}),
    ("cp4-gqa-vocab", dict(cp=4), "1f1b", 2, {"vocab": 11, "kv_heads": 2}),
    ("cp2-dp2-zbh1", dict(dp=2, pp=2, cp=2), "zb-h1", 2, {"gated_mlp": True}),
    ("ep2-dp2-tp2-pp2", dict(dp=2, pp=2, tp=2, ep=2), "1f1b", 2, MOE),
    ("ep4-dp4-shared", dict(dp=4, ep=4), "gpipe", 1,
     {**MOE, "shared_experts": 1, "dense_layers": 1, "vocab": 13}),
    ("ep2-in-cp2-tp2", dict(cp=2, tp=2, ep=2), "interleaved-1f1b", 2, {**MOE, "top_k": 1}),
    ("ep4-across-dp-cp", dict(dp=2, cp=2, ep=4), "zb-v", 2, {**MOE, "top_k": 3}),
    # stages holding only the embedding or only the head (issue 22's layouts)
    ("cp2-ep2-layout", dict(pp=4, cp=2, ep=2), "1f1b", 4, {**MOE, "vocab": 9}, "E|t*2|t*2|L"),
]


def _layers(mesh: dict, schedule: str, layout: str | None) -> int:
    if layout is not None:
        return PipelineLayout.parse(layout).num_layers
    return 2 * mesh.get("pp", 1) * (2 if schedule in ("interleaved-1f1b", "zb-v") else 1)


def _plan(mesh: dict, schedule: str, m: int, model: dict, layout: str | None = None) -> Plan:
    cfg = ModelConfig(layers=_layers(mesh, schedule, layout), hidden=16, heads=4, seq=16,
                      **model)
    return Plan(cfg, Mesh(**mesh), schedule=schedule, microbatches=m,
                chunks=2 if schedule == "interleaved-1f1b" else None, layout=layout)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_inprocess_matches_the_reference_and_numba_matches_numpy(case):
    plan = _plan(*case[1:])
    batch = random_batch(plan.config, plan.mesh.dp * plan.microbatches * 2, 3)
    report = verify_plan(plan, batch=batch, backend="numpy")
    assert report.ok, report.errors
    if plan.config.aux_loss_coeff:
        assert "aux_loss" in report.errors and report.result.aux_loss > 0
    numba = plan.run(init_params(plan.config, 0), batch, backend="numba")
    diff = compare_runs(report.result, numba)
    assert diff.bitwise and diff.counters_equal, diff.describe()
    sent = {g: sum(c.bytes_sent[g] for c in report.result.counters) for g in ("cp", "ep")}
    assert (sent["cp"] > 0) == (plan.mesh.cp > 1)
    assert (sent["ep"] > 0) == (plan.mesh.ep > 1)


def test_a_cp_block_moves_what_the_ring_says():
    """Per attention layer and micro-batch, forward: cp-1 K/V blocks; backward: cp-1
    K/V blocks with their dK/dV (4 tensors) and one last dK/dV hop home."""
    plan = _plan(dict(cp=2), "1f1b", 1, {})
    result = plan.run(init_params(plan.config, 0), random_batch(plan.config, 2, 1),
                      backend="numpy")
    b, kv, n, d = 2, 4, 16 // 2, 4
    block = b * kv * n * d * 8  # one K (or V) block, float64
    per_layer = (2 * block) * 1 + (4 * block) * 1 + 2 * block
    assert [c.bytes_sent["cp"] for c in result.counters] == [2 * per_layer] * 2


@pytest.mark.mpi
@pytest.mark.slow  # ~60 s on 2 cores
def test_mpi_is_bitwise_equal_to_inprocess():
    cases = [{"name": name, "mesh": mesh, "schedule": s, "m": m, "b": 2, "allreduce": "ring",
              "chunks": 2 if s == "interleaved-1f1b" else None, "layout": layout[0] if layout
              else None, "model": {"layers": _layers(mesh, s, layout[0] if layout else None),
                                   "hidden": 16, "heads": 4, "seq": 16, **model}}
             for name, mesh, s, m, model, *layout in CASES]
    job = Path(__file__).resolve().parents[1] / "helpers" / "parity_job.py"
    run = launch(8, [str(job), json.dumps(cases)], timeout=300, capture=True)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {row["case"]: row for row in json.loads(run.stdout)}
    assert set(rows) == {c[0] for c in CASES}
    for name, row in rows.items():
        assert row["bitwise"] and row["counters_equal"], (name, row["describe"])
        assert (row["aux_loss"] > 0) == ("ep" in name)


def test_generation_and_serving_refuse_cp_and_ep_meshes():
    cfg = ModelConfig(layers=2, hidden=16, heads=4, vocab=11)
    reqs, policy = [Request(0, 0.0, 2, 2)], BatchingPolicy(num_blocks=4)

    def price(it):
        return StagePrice((1.0,), 0.0)

    with pytest.raises(ValueError, match="InferencePlan: the mesh .* has cp=2"):
        InferencePlan(cfg, Mesh(cp=2), 1, 4, 2)
    with pytest.raises(ValueError, match="ServingPlan: the mesh .* has cp=1, ep=2"):
        ServingPlan(cfg, Mesh(dp=2, ep=2), reqs, policy, price)
    with pytest.raises(ValueError, match="ServingPlan: generation builds dense GeLU MLPs"):
        ServingPlan(ModelConfig(layers=2, hidden=16, heads=4, vocab=11, **MOE), Mesh(), reqs,
                    policy, price)
