"""Generation on TP × PP × DP ranks through the one interpreter: in-process and MPI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ringpipe.cli import main
from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig, init_params
from ringpipe.model.generate import generate
from ringpipe.mpi.launch import launch
from ringpipe.plan.inference import InferencePlan
from ringpipe.runtime.inference import run_inprocess_inference

CFG = ModelConfig(layers=4, hidden=16, heads=4, kv_heads=2, vocab=40)


def _prompts(batch, length=5, seed=3):
    return np.random.default_rng(seed).integers(0, CFG.vocab, (batch, length))


@pytest.mark.parametrize("dp,pp,tp", [(1, 1, 1), (1, 2, 2), (1, 4, 1), (1, 1, 4),
                                      (2, 2, 1), (3, 2, 2)])
def test_inprocess_matches_reference(dp, pp, tp):
    params, prompts = init_params(CFG, 1), _prompts(7)
    ref = generate(CFG, params, prompts, 4)
    plan = InferencePlan(CFG, Mesh(dp=dp, pp=pp, tp=tp), 7, 5, 4)
    res = run_inprocess_inference(plan, params, prompts, "numpy")
    assert np.array_equal(res.tokens, ref.tokens)
    err = np.max(np.abs(res.logits - ref.logits)) / np.max(np.abs(ref.logits))
    assert err < 1e-10
    assert [c.rank for c in res.counters] == list(range(dp * pp * tp))
    layers_here = CFG.layers // pp
    for c in res.counters:
        # two g all-reduces per block per token step (tp > 1 only); KV by heads and layers
        assert c.allreduce_calls["tp"] == (2 * layers_here * 4 * plan.groups if tp > 1 else 0)
        start, stop = plan.replica_rows(c.dp)
        kv_here = max(CFG.kv_heads // tp, 1)
        assert c.kv_cache_bytes == 2 * layers_here * (stop - start) * kv_here * 4 * 8 * 8


def test_tp1_pp1_is_bitwise_the_reference_and_groups_change_nothing():
    params, prompts = init_params(CFG, 2), _prompts(4)
    ref = generate(CFG, params, prompts, 3)
    one = run_inprocess_inference(InferencePlan(CFG, Mesh(), 4, 5, 3), params, prompts)
    assert np.array_equal(one.logits, ref.logits)
    two = InferencePlan(CFG, Mesh(pp=2), 4, 5, 3, groups=1)
    assert np.array_equal(run_inprocess_inference(two, params, prompts).tokens, ref.tokens)


def test_hand_back_bytes_are_the_token_ids():
    params, prompts = init_params(CFG, 0), _prompts(4)
    plan = InferencePlan(CFG, Mesh(pp=2), 4, 5, 3)
    res = run_inprocess_inference(plan, params, prompts)
    first, last = res.counters
    # rank 0 sends hidden states: prefill 5 positions then 1 per decode step, per group
    assert first.bytes_sent["pp"] == 4 * 16 * 8 * (5 + 1 + 1)
    # rank 1 hands back one int64 token per sequence per step, except after the last
    assert last.bytes_sent["pp"] == 4 * 8 * 2


def test_plan_and_input_checks():
    with pytest.raises(ValueError, match="groups must be <= 1"):
        InferencePlan(CFG, Mesh(dp=2, pp=2), 3, 5, 2, groups=2)
    with pytest.raises(ValueError, match="batch must be >= 2"):
        InferencePlan(CFG, Mesh(dp=2), 1, 5, 2)
    plan = InferencePlan(CFG, Mesh(pp=2), 4, 5, 2)
    with pytest.raises(ValueError, match=r"prompts have shape \(4, 6\)"):
        run_inprocess_inference(plan, init_params(CFG, 0), _prompts(4, 6))
    with pytest.raises(ValueError, match="kv_heads=2 does not fit tp=3"):
        InferencePlan(ModelConfig(layers=2, hidden=12, heads=6, kv_heads=2, vocab=9),
                      Mesh(tp=3), 2, 2, 2)


def test_cli_verify_inference(capsys):
    argv = ["verify", "--inference", "--tp", "2", "--pp", "2", "--prompt-len", "4",
            "--new-tokens", "3", "--batch", "3", "--hidden", "16", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and doc["tokens_equal"] and doc["max_rel_error"] < 1e-10
    # 2 all-reduces per block × 2 blocks per stage × 3 token steps × 2 groups
    assert len(doc["kv_cache_bytes"]) == 4 and doc["allreduce_calls"] == [2 * 2 * 3 * 2] * 4
    assert main(["verify", "--inference", "--chunks", "2"]) == 2
    assert "--stages-per-rank does not apply" in capsys.readouterr().err  # --chunks' name
    assert main(["verify", "--inference", "--tp", "3", "--heads", "4"]) == 2
    assert main(["verify", "--inference", "--np", "2"]) == 2


@pytest.mark.mpi
def test_mpi_is_bitwise_the_inprocess_run():
    job = launch(8, ["-m", "ringpipe.mpi", "verify", "--inference", "--tp", "2", "--pp",
                     "2", "--dp", "2", "--kv-heads", "1", "--hidden", "16", "--prompt-len", "4",
                     "--new-tokens", "3", "--batch", "5", "--json"], timeout=120, capture=True)
    assert job.returncode == 0, job.stdout + job.stderr
    doc = json.loads(job.stdout)
    assert doc["ok"] and doc["tokens_equal"] and doc["bitwise_inproc"]
    assert doc["counters_equal_inproc"] and doc["processes"] == 8


@pytest.fixture
def gpu(monkeypatch):
    """backend "cupy" resolves to the emulated device (as strict as CuPy; see
    ``tests/helpers/emulated_device.py``) for this test."""
    from emulated_gpu import emulated_gpu

    import ringpipe.collectives.api
    import ringpipe.runtime.inproc

    device = emulated_gpu()
    monkeypatch.setattr(ringpipe.collectives.api, "gpu_arrays", lambda where: device)
    monkeypatch.setattr(ringpipe.runtime.inproc, "gpu_arrays", lambda where: device)
    return device


def test_generation_on_the_device_equals_the_host_bitwise(gpu):
    from emulated_device import EMULATED

    params, prompts = init_params(CFG, 4), _prompts(5)
    host = generate(CFG, params, prompts, 3)
    dev = generate(CFG, {k: EMULATED.asarray(v) for k, v in params.items()},
                   EMULATED.asarray(prompts), 3)
    assert np.array_equal(dev.logits, host.logits) and np.array_equal(dev.tokens, host.tokens)
    plan = InferencePlan(CFG, Mesh(pp=2, tp=2), 5, 5, 3)
    on_device = run_inprocess_inference(plan, params, prompts, "cupy")
    on_host = run_inprocess_inference(plan, params, prompts, "numpy")
    assert np.array_equal(on_device.logits, on_host.logits)
    assert on_device.counters == on_host.counters
