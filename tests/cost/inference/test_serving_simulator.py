"""The serving simulator: the runtime's scheduler priced per iteration by the inference
cost model. At low load it is the static model; under load the queue fills."""

from __future__ import annotations

import numpy as np
import pytest

from ringpipe.cost.hardware.cluster import cluster_preset
from ringpipe.cost.inference.goodput import goodput, rank
from ringpipe.cost.inference.iteration import IterationPricer, kv_blocks
from ringpipe.cost.inference.model import InferenceModel
from ringpipe.cost.inference.serving import Knobs, Load, Slo, simulate
from ringpipe.cost.inference.traffic import read_trace
from ringpipe.cost.inference.workload import Workload
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.model.presets import model_preset
from ringpipe.plan.serving import ServingPlan
from ringpipe.runtime.batching import OpenLoop, Request, serve

IM = InferenceModel(model_preset("llama3-70b"), cluster_preset("dgx-h100"))


@pytest.mark.parametrize("layout", [Mesh(tp=8), Mesh(tp=4, dp=2), Mesh(tp=2, pp=4),
                                    Mesh(tp=2, pp=2, dp=2)])
def test_one_request_at_a_time_is_the_static_model(layout):
    static = IM.predict(layout, Workload(1024, 33, 1))
    stats = simulate(IM, layout, Load(1024, 33, requests=6, rate=1e-4))
    for q in (50, 99):  # every request alone: its TTFT, mean gap and E2E are the static ones
        assert stats.pct("ttft", q) == pytest.approx(static.ttft_s, rel=1e-9)
        assert stats.pct("itl", q) == pytest.approx(static.tpot_s, rel=1e-9)
        assert stats.pct("e2e", q) == pytest.approx(static.latency_s, rel=1e-9)
    closed = simulate(IM, layout, Load(1024, 33, requests=4, concurrency=1))
    assert closed.requests_per_s == pytest.approx(1 / static.latency_s, rel=1e-9)


def test_latency_rises_with_load_as_the_queue_fills():
    rates = [0.25, 1, 2, 4, 8, 16]
    sweep = [simulate(IM, Mesh(tp=4, dp=2), Load(2048, 64, requests=120, rate=r))
             for r in rates]
    static = IM.predict(Mesh(tp=4, dp=2), Workload(2048, 64, 1))
    for metric in ("ttft", "itl"):
        p50 = [s.pct(metric, 50) for s in sweep]
        assert p50 == sorted(p50), (metric, p50)
        assert p50[-1] > 2 * p50[0]
    assert sweep[0].pct("ttft", 50) < 1.1 * static.ttft_s
    batches = [s.mean_batch for s in sweep]
    assert batches == sorted(batches) and batches[-1] > 10 * batches[0]
    # throughput follows the offered load until the replicas saturate
    assert sweep[1].requests_per_s == pytest.approx(1, rel=0.25)
    assert sweep[-1].requests_per_s < 0.9 * rates[-1]


def test_the_simulated_policy_is_the_executed_one():
    """The simulator's iterations for a load are the ServingPlan's for the same requests
    and clock: one scheduler, one loop."""
    cfg = ModelConfig(layers=4, hidden=16, heads=4, kv_heads=2, vocab=40)
    im = InferenceModel(cfg, cluster_preset("dgx-h100"))
    layout = Mesh(pp=2, tp=2)
    reqs = [Request(i, 1e-4 * i, 3 + i % 5, 1 + i % 4) for i in range(10)]
    knobs = Knobs(block_size=2, max_batch=3, token_budget=6)
    policy = knobs.policy(12)
    plan = ServingPlan(cfg, layout, reqs, policy, IterationPricer(im, layout))
    again = serve(policy, OpenLoop(reqs), IterationPricer(im, layout), 2)
    assert plan.traces[0].iterations == again.iterations
    assert plan.traces[0].requests == again.requests


def test_closed_loop_keeps_concurrency_requests_in_flight():
    one = simulate(IM, Mesh(tp=8), Load(512, 32, requests=16, concurrency=1))
    eight = simulate(IM, Mesh(tp=8), Load(512, 32, requests=64, concurrency=8))
    assert 6 < eight.mean_batch <= 8
    assert eight.requests_per_s > 5 * one.requests_per_s  # batching: more for little ITL
    assert eight.pct("itl", 50) < 1.5 * one.pct("itl", 50)


def test_kv_pool_and_layouts_that_do_not_fit():
    assert simulate(IM, Mesh(dp=8), Load(128, 8, rate=1.0)) is None  # 70B on one GPU
    # the pool is the static model's memory: with one-position blocks, max_batch sequences
    # of L + K positions each
    for layout in (Mesh(tp=8), Mesh(tp=2, pp=4)):
        static = IM.predict(layout, Workload(1000, 24, 1))
        assert kv_blocks(IM, layout, "bf16", 1) // 1024 == static.max_batch
        assert kv_blocks(IM, layout, "bf16", 16) == kv_blocks(IM, layout, "bf16", 1) // 16


def test_a_trace_file_is_served_and_rescaled(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("# made up\narrival_s,input_tokens,output_tokens\n0.0,100,5\n0.5,200,3\n"
                    "2.0,50,8\n")
    reqs = read_trace(path)
    assert [(r.arrival_s, r.prompt_len, r.output_len) for r in reqs] == [
        (0.0, 100, 5), (0.5, 200, 3), (2.0, 50, 8)]
    load = Load(1, 1, trace=tuple(reqs))
    assert [r.arrival_s for r in load.at_rate(2.0).trace] == [0.0, 0.25, 1.0]
    stats = simulate(IM, Mesh(tp=8), load)
    assert stats.output_tokens == 16 and len(stats.ttft_s) == 3
    path.write_text("arrival_s,input_tokens,output_tokens\n0.0,1.5,3\n")
    with pytest.raises(ValueError, match=r"trace.csv:2: input_tokens must be an integer"):
        read_trace(path)
    path.write_text("when,in,out\n")
    with pytest.raises(ValueError, match="header must be arrival_s,input_tokens"):
        read_trace(path)


def test_goodput_is_the_largest_rate_meeting_the_slo():
    load = Load(1024, 32, requests=60, rate=1.0)
    slo = Slo(ttft_s=0.5, itl_s=0.03, percentile=90)
    g = goodput(IM, Mesh(tp=8), load, slo, start=2.0)
    assert g > 0
    assert slo.meets(simulate(IM, Mesh(tp=8), load.at_rate(g)))
    assert not slo.meets(simulate(IM, Mesh(tp=8), load.at_rate(1.3 * g)))
    # a target below the zero-load latency is never met
    assert goodput(IM, Mesh(tp=8), load, Slo(ttft_s=1e-3)) == 0.0


def test_rank_orders_layouts_by_goodput_and_explains_the_winner():
    model = model_preset("llama3-8b")
    report = rank(model, cluster_preset("dgx-h100", 1), Load(512, 32, requests=60, rate=20.0),
                  Slo(ttft_s=0.3, itl_s=0.02, percentile=99), pins={"tp": None, "pp": None})
    goods = [c.goodput_rps for c in report.candidates if c.stats is not None]
    assert goods == sorted(goods, reverse=True)
    sentence = report.explanation()
    assert sentence.count(".") >= 1 and "requests/s of goodput (p99 TTFT ≤ 300 ms" in sentence
    best = report.candidates[0].to_dict(99)
    for key in ("ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "itl_p50_s", "itl_p90_s",
                "itl_p99_s", "e2e_p50_s", "e2e_p90_s", "e2e_p99_s",
                "throughput_tokens_per_s", "requests_per_s", "goodput_requests_per_s"):
        assert np.isfinite(best[key])


def test_disaggregated_pools_reduce_to_static_prefill_and_decode():
    from ringpipe.cost.inference.disagg import kv_transfer_s, simulate_disaggregated

    prefill, decode = Mesh(tp=4), Mesh(tp=2)
    alone = simulate_disaggregated(IM, prefill, decode, Load(1024, 33, requests=3, rate=1e-4))
    ttft = IM.predict(prefill, Workload(1024, 33, 1)).ttft_s
    tpot = IM.predict(decode, Workload(1024, 33, 1)).tpot_s
    hop = kv_transfer_s(IM, prefill, decode, 1024)
    # 2 · 80 layers · 8 kv heads · 128 · 2 bytes · 1024 positions over 4 NVLink senders
    assert hop == pytest.approx(2e-6 + 2 * 80 * 8 * 128 * 2 * 1024 / 4 / 450e9)
    assert alone.pct("ttft", 50) == pytest.approx(ttft, rel=1e-9)
    # the first gap adds the transfer to the decode pool's first step (the static context's
    # mean is L + K/2 over K - 1 steps, as colocated)
    assert alone.pct("itl", 50) == pytest.approx(tpot + hop / 32, rel=1e-6)
    # under load the decode pool's ITL stays flat while colocated prefills stall decodes
    load = Load(2048, 64, requests=80, rate=6.0)
    split = simulate_disaggregated(IM, prefill, Mesh(tp=4), load)
    together = simulate(IM, Mesh(tp=4, dp=2), load)
    assert split.pct("itl", 99) < 0.8 * together.pct("itl", 99)
    with pytest.raises(ValueError, match="closed loop"):
        simulate_disaggregated(IM, prefill, decode, Load(64, 4, requests=8, concurrency=2))
