"""Operator-level time: the kernel model and each recipe option, against hand-computed
values."""

import dataclasses
import math

import pytest

from ringpipe.cost.hardware.cluster import cluster_preset
from ringpipe.cost.hardware.collectives import CollectiveModel
from ringpipe.cost.hardware.gpu import A100, GpuKernels
from ringpipe.cost.training.operators import LayerCosts
from ringpipe.cost.training.prediction import Config
from ringpipe.cost.training.recipe import Recipe
from ringpipe.cost.training.spec import TrainingSpec
from ringpipe.cost.training.step_time import BUCKET_PARAMS, StepModel
from ringpipe.mesh import Mesh
from ringpipe.model.presets import gpt_like, llama_like

GPT = gpt_like("gpt", 8, 4096, 32, 2048, 51200, learned_positions=True)
C = cluster_preset("dgx-a100", 1)
RATE, HBM = C.achievable_flops, C.memory_bandwidth


def costs(recipe, tp=8, model=GPT):
    return LayerCosts(model, C, recipe, tuple(range(tp)), CollectiveModel(C))


def test_wave_quantisation_and_roofline():
    k = GpuKernels(sm_count=108, saturation=0.0)
    # 4096 x 4096: 32 x 16 = 512 tiles -> 5 waves of 108 -> 512 / 540
    assert k.wave_efficiency(4096, 4096) == pytest.approx(512 / 540)
    # TP=8 shrinks N: 4096 x 512 -> 32 x 2 = 64 tiles, one partial wave
    assert k.wave_efficiency(4096, 512) == pytest.approx(64 / 108)
    t = k.gemm_time(4096, 4096, 4096, RATE, HBM)
    assert t == pytest.approx(2 * 4096**3 / (RATE * 512 / 540))
    skinny = k.gemm_time(2048, 2048, 32, RATE, HBM)  # head-dim-like K: memory-bound
    assert skinny == pytest.approx(2 * (2048 * 32 * 2 + 2048 * 2048) / HBM)
    assert k.gemm_time(1, 1, 1, RATE, HBM) == k.launch_overhead
    assert k.memory_time(10, HBM) == k.launch_overhead and k.memory_time(0, HBM) == 0
    with pytest.raises(ValueError, match="flash_fraction"):
        GpuKernels(flash_fraction=0)
    with pytest.raises(ValueError, match=r"saturation must be in \[0, 1e\+09\]"):
        GpuKernels(saturation=-1.0)


def test_saturation_slows_thin_and_short_gemms():
    """sat = M/(M+d0) · N/(N+d0) · K/(K+d0): micro-batch 1 (short M) and TP=8 (thin N)
    lose more than tile quantisation alone says."""
    k = GpuKernels(saturation=144.0)
    sat = (4096 / (4096 + 144)) ** 3
    t = k.gemm_time(4096, 4096, 4096, RATE, HBM)
    assert t == pytest.approx(2 * 4096**3 / (RATE * sat * 512 / 540))
    fat = 2 * 8192 * 4096 * 4096 / k.gemm_time(8192, 4096, 4096, RATE, HBM)
    short = 2 * 1024 * 4096 * 4096 / k.gemm_time(1024, 4096, 4096, RATE, HBM)
    assert short < 0.9 * fat


def test_sequence_parallelism_trades_all_reduce_for_reduce_scatter_plus_all_gather():
    """Same volume (ring: RS + AG = AR), so the TP time per layer is unchanged on one
    node, while the norm/dropout/residual traffic drops t-fold."""
    sp, plain = costs(Recipe(flash_attention=False)), costs(
        Recipe(sequence_parallel=False, flash_attention=False))
    act = GPT.seq * 1 * GPT.hidden * 2
    model = CollectiveModel(C)
    group = tuple(range(8))
    ar = model.best("all_reduce", act, group).time
    rs_ag = model.best("reduce_scatter", act, group).time + model.best(
        "all_gather", act, group).time
    assert plain.tp_layer_comm(1) == pytest.approx(2 * ar)
    assert sp.tp_layer_comm(1) == pytest.approx(2 * rs_ag)
    assert sp.memory_bound(1) < plain.memory_bound(1)
    th = GPT.seq * GPT.hidden
    # norms 2·2, residuals 2·3, dropouts 2·5 bytes per element (÷8 under SP), GeLU 4·f/8
    expected = sum(max(x / HBM, A100.launch_overhead) for x in
                   [4 * th / 8, 4 * th / 8, 6 * th / 8, 6 * th / 8, 4 * th * 4 / 8,
                    5 * th / 8, 5 * th / 8])
    assert sp.memory_bound(1) == pytest.approx(expected)


def test_flash_attention_time():
    """Causal flash: half of 4·b·s²·h/t forward at flash_fraction of peak; 2.5x backward."""
    c = costs(Recipe())
    fwd, bwd = c.attention_core(2, "none")
    want = 0.5 * 4 * 2 * GPT.seq**2 * GPT.hidden / 8 / (C.peak_flops * A100.flash_fraction)
    assert fwd == pytest.approx(want) and bwd == pytest.approx(2.5 * want)


def test_recomputation_time():
    c = costs(Recipe(flash_attention=False))
    none, full = c.layer(1, "none"), c.layer(1, "full")
    assert full.backward_input == pytest.approx(none.backward_input + none.forward)
    assert full.tp_comm == pytest.approx(1.5 * none.tp_comm)
    selective = c.layer(1, "selective")
    core_fwd, _ = c.attention_core(1, "none")
    assert selective.backward_input == pytest.approx(none.backward_input + core_fwd)
    assert selective.forward == none.forward and selective.backward_weight == \
        none.backward_weight
    flash = costs(Recipe())
    extra = flash.layer(1, "selective").backward_input - flash.layer(1, "none").backward_input
    assert extra == pytest.approx(flash.memory_bound(1, recomputed_only=True))


def test_gemm_shapes_follow_the_tp_split():
    """The weight-gradient time is the four GEMMs' K x N x T products."""
    c = costs(Recipe(), tp=4)
    h, f, t, m = GPT.hidden, GPT.ffn, 4, GPT.seq
    shapes = [(h, 3 * h / t, m), (h / t, h, m), (h, f / t, m), (f / t, h, m)]
    want = sum(A100.gemm_time(a, b, k, RATE, HBM) for a, b, k in shapes)
    assert c.layer(1, "none").backward_weight == pytest.approx(want)


def step(recipe, dp=8, nodes=8, **kw):
    return StepModel(GPT, TrainingSpec(64, 1, "bf16", "none", recipe),
                     cluster_preset("dgx-a100", nodes), **kw)


def test_distributed_optimizer_and_overlap_price_the_dp_traffic():
    config = Config(Mesh(dp=8, pp=1, tp=8), "1f1b", 1, None, "none")
    plain = step(Recipe(distributed_optimizer=False, overlap_grad_reduce=False))
    p = plain.predict(config)
    params = max(plain.rank_params(config, plain.layout(config)))
    group = config.mesh.group("dp", 0)
    ar = plain.comms.best("all_reduce", params * 4, group, 8).time  # fp32 gradients
    assert p.dp_comm_time == pytest.approx(ar) and p.dp_comm_total == pytest.approx(ar)
    dist = step(Recipe(overlap_grad_reduce=False)).predict(config)
    rs = plain.comms.best("reduce_scatter", params * 4, group, 8).time
    ag = plain.comms.best("all_gather", params * 2, group, 8).time
    assert dist.dp_comm_time == pytest.approx(rs + ag)
    overlapped = step(Recipe())
    o = overlapped.predict(config)
    layout = overlapped.layout(config)
    stages, _ = _stage_ops(overlapped, config, layout)
    buckets = math.ceil(params / max(BUCKET_PARAMS, 1_000_000 * 8))
    want = max(rs - stages.backward_input - stages.backward_weight, rs / buckets) \
        + max(ag - stages.forward, ag / buckets)
    assert o.dp_comm_time == pytest.approx(want) and o.dp_comm_time < dist.dp_comm_time


def _stage_ops(model, config, layout):
    from ringpipe.cost.training.operators import stage_costs

    lc = LayerCosts(model.model, model.cluster, model.training.recipe,
                    config.mesh.group("tp", 0), model.comms, 2)
    stages, one = stage_costs(lc, config.microbatch_size, config.recompute, layout.layers)
    return stages[0], one


def test_pp_messages_cross_nodes_at_the_nic_share():
    """tp 8 fills a node, so every stage boundary crosses nodes; with SP each TP rank
    sends its b·s·h/t slice, all 8 GPUs of the node at once."""
    model = step(Recipe(), nodes=4)
    config = Config(Mesh(dp=1, pp=4, tp=8), "1f1b", 1, None, "none")
    act = GPT.seq * GPT.hidden * 2
    c = model.cluster
    assert model.message_time(config) == pytest.approx(
        c.inter.latency + act / 8 / c.crossing_bandwidth(8))
    no_sp = step(Recipe(sequence_parallel=False), nodes=4)
    gather = no_sp.comms.best("all_gather", act, tuple(range(8))).time
    assert no_sp.message_time(config) == pytest.approx(model.message_time(config) + gather)
    pcie = dataclasses.replace(model, cluster=cluster_preset("pcie-a100", 4),
                               comms=CollectiveModel(cluster_preset("pcie-a100", 4)))
    assert pcie.message_time(config) > 3 * model.message_time(config)


def test_gqa_and_swiglu_gemm_shapes():
    """Llama-style layer: QKV N = (h + 2·g·d)/t, fc1 N = 2f/t (gate and up)."""
    llama = llama_like("l", 4, 4096, 32, 8, 11008, 2048, 32000)
    c = costs(Recipe(), tp=4, model=llama)
    h, f, t, m, kv = 4096, 11008, 4, 2048, 4096 * 8 // 32
    shapes = [(m, (h + 2 * kv) / t, h), (m, h, h / t), (m, 2 * f / t, h), (m, h, f / t)]
    gemms = sum(A100.gemm_time(a, b, k, RATE, HBM) for a, b, k in shapes)
    core, _ = c.attention_core(1, "none")
    want = gemms + core + c.memory_bound(1) + c.tp_layer_comm(1)
    assert c.layer(1, "none").forward == pytest.approx(want)
    mha = costs(Recipe(), tp=4, model=dataclasses.replace(llama, kv_heads=32))
    assert mha.layer(1, "none").forward > c.layer(1, "none").forward
