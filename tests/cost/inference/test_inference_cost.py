"""The inference cost model: KV-cache size, roofline, directions published measurements
show, and calibration against a cited table with out-of-sample errors on another."""

import math

import pytest

from ringpipe.cost import cluster_preset, model_preset
from ringpipe.cost.inference.model import (
    CALIBRATED_HBM_EFFICIENCY,
    CALIBRATED_LAYER_OVERHEAD,
    InferenceCalibration,
    InferenceModel,
)
from ringpipe.cost.inference.workload import Workload, kv_cache_bytes
from ringpipe.cost.published.inference_tables import (
    NEMO_LLAMA2_7B,
    TRTLLM_FIRST_TOKEN,
    TRTLLM_THROUGHPUT,
    VLLM_LATENCY,
    calibrate,
    relative_errors,
)
from ringpipe.mesh import Mesh

LLAMA70 = model_preset("llama3-70b")


def predict(cluster, tp, pp, batch=1, model=LLAMA70, dtype="bf16", prompt=2048, out=128):
    im = InferenceModel(model, cluster_preset(cluster))
    return im.predict(Mesh(tp=tp, pp=pp), Workload(prompt, out, batch, dtype))


def test_kv_cache_formula_and_sharding():
    # 2 · layers · kv_heads · head_dim · bytes per token per sequence
    assert kv_cache_bytes(LLAMA70, 1, 1) == 2 * 80 * 8 * 128 * 2
    assert kv_cache_bytes(LLAMA70, 10, 3, tp=4) == 2 * 80 * 2 * 128 * 2 * 30
    assert kv_cache_bytes(LLAMA70, 1, 1, tp=16) == 2 * 80 * 1 * 128 * 2  # replicated past 8
    assert kv_cache_bytes(LLAMA70, 1, 1, tp=2, layers=10, dtype="fp8") == 2 * 10 * 4 * 128


def test_h200_preset_and_fp8_weights():
    h200 = cluster_preset("dgx-h200")
    assert h200.memory_bytes == pytest.approx(141e9) and h200.memory_bandwidth == 4.8e12
    bf16, fp8 = predict("dgx-h200", 8, 1), predict("dgx-h200", 8, 1, dtype="fp8")
    assert fp8.weights_gib == pytest.approx(bf16.weights_gib / 2)
    assert fp8.tpot_s < bf16.tpot_s and fp8.max_batch > bf16.max_batch


def test_memory_and_fit():
    p = predict("dgx-h100", 8, 1, batch=16)
    assert p.memory_gib == pytest.approx(p.weights_gib + p.kv_cache_gib)
    assert p.kv_cache_gib * 2**30 == pytest.approx(kv_cache_bytes(LLAMA70, 2176, 16, tp=8))
    assert p.fits and predict("dgx-h100", 8, 1, batch=p.max_batch + 8).fits is False
    with pytest.raises(ValueError, match="needs 16 GPUs"):
        predict("dgx-h100", 8, 2)
    with pytest.raises(ValueError, match="Workload.dtype"):
        Workload(8, 8, 1, "fp16")


def test_decode_roofline_is_memory_bound_at_batch_1():
    im = InferenceModel(LLAMA70, cluster_preset("dgx-h100"))
    one = im.decode_stage(80, True, 1, 2048, 8, "bf16")
    big = im.decode_stage(80, True, 64, 2048, 8, "bf16")
    weights = LLAMA70.matmul_params_per_layer * 80 / 8 * 2
    assert one["matmul"] == pytest.approx(weights / (CALIBRATED_HBM_EFFICIENCY * 3350e9),
                                          rel=0.01)
    assert big["matmul"] < 2 * one["matmul"] and big["attention"] > 32 * one["attention"]
    assert one["overhead"] == pytest.approx(80 * CALIBRATED_LAYER_OVERHEAD)


def test_published_directions():
    # NVIDIA, "Boosting Llama 3.1 405B Throughput by Another 1.5x on H200" (2024):
    # TP8 5.6x lower minimum latency than PP8; PP8 1.5x higher maximum throughput.
    tp8, pp8 = predict("dgx-h100", 8, 1), predict("dgx-h100", 1, 8)
    assert pp8.tpot_s / tp8.tpot_s > 2.5
    tp_max = predict("dgx-h100", 8, 1, batch=tp8.max_batch)
    pp_max = predict("dgx-h100", 1, 8, batch=pp8.max_batch)
    assert pp_max.tokens_per_s_per_gpu > tp_max.tokens_per_s_per_gpu
    big = model_preset("llama3-405b")
    tp8, pp8 = (predict("dgx-h200", 8, 1, model=big, dtype="fp8"),
                predict("dgx-h200", 1, 8, model=big, dtype="fp8"))
    assert pp8.tpot_s / tp8.tpot_s > 2.5
    assert (predict("dgx-h200", 1, 8, pp8.max_batch, big, "fp8").tokens_per_s_per_gpu
            > predict("dgx-h200", 8, 1, tp8.max_batch, big, "fp8").tokens_per_s_per_gpu)
    # PCIe: TP's latency advantage shrinks (all-reduces over a slower, higher-α link)
    nvlink = predict("dgx-a100", 1, 8).tpot_s / predict("dgx-a100", 8, 1).tpot_s
    pcie = predict("pcie-a100", 1, 8).tpot_s / predict("pcie-a100", 8, 1).tpot_s
    assert pcie < nvlink


def test_pipeline_groups_raise_throughput_not_latency():
    one = predict("dgx-h100", 1, 8, batch=1)
    eight = predict("dgx-h100", 1, 8, batch=8)
    assert eight.tokens_per_s_per_gpu > 4 * one.tokens_per_s_per_gpu
    assert eight.tpot_s < 1.5 * one.tpot_s


def _rms(errors):
    return math.sqrt(sum(e * e for e in errors) / len(errors))


def test_calibration_errors_stay_documented():
    errors = relative_errors(VLLM_LATENCY)  # the calibration table
    assert _rms(errors) < 0.045 and max(map(abs, errors)) < 0.07
    # out of sample (docs/inference.md): 2023 TensorRT-LLM was slower than the fit says
    nemo = relative_errors(NEMO_LLAMA2_7B)
    assert _rms(nemo) < 0.34 and all(-0.54 < e < 0 for e in nemo)
    first = relative_errors(TRTLLM_FIRST_TOKEN)
    assert _rms(first) < 0.30 and all(-0.45 < e < 0 for e in first)
    throughput = relative_errors(TRTLLM_THROUGHPUT)
    assert max(map(abs, throughput[:4])) < 0.18  # 7B rows; 70B long outputs are worse


def test_stored_constants_are_the_calibration_optimum():
    cal = calibrate()  # coarse to fine; the whole 0.01 grid (coarse=1) gives the same
    assert cal.hbm_efficiency == CALIBRATED_HBM_EFFICIENCY
    assert cal.layer_overhead == pytest.approx(CALIBRATED_LAYER_OVERHEAD, abs=1e-7)


def test_coarse_to_fine_search_finds_the_whole_grid_optimum():
    rows = NEMO_LLAMA2_7B[::5]  # 7 rows whose optimum η = 0.87 is off the coarse grid
    assert calibrate(NEMO_LLAMA2_7B) == InferenceCalibration(0.88, 140.0e-6)  # the 2023 fit
    whole = calibrate(rows, coarse=1)
    assert round(whole.hbm_efficiency * 100) % 5 != 0
    assert calibrate(rows) == whole
    with pytest.raises(ValueError, match="coarse"):
        calibrate(rows, coarse=0)
