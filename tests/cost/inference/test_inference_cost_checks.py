"""Bad input to the inference APIs: TypeError/ValueError naming the argument, never a
NaN timing, negative bytes, ZeroDivisionError, KeyError or AttributeError."""

import math
from fractions import Fraction

import numpy as np
import pytest

from ringpipe.cost import cluster_preset, model_preset
from ringpipe.cost.inference.model import InferenceCalibration, InferenceModel
from ringpipe.cost.inference.search import search
from ringpipe.cost.inference.workload import Workload, kv_cache_bytes
from ringpipe.mesh import Mesh
from ringpipe.model.kv_cache import KVCache
from ringpipe.schedules.generators.decode import decode, inference_timing

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("kwargs, error, words", [
    ({"p2p_latency": NAN}, ValueError, "p2p_latency must be finite"),
    ({"p2p_latency": INF}, ValueError, "p2p_latency must be finite"),
    ({"p2p_latency": -1.0}, ValueError, "p2p_latency must be >= 0"),
    ({"p2p_latency": "1"}, TypeError, "p2p_latency must be a number"),
    ({"prefill_cost": NAN}, ValueError, "prefill_cost must be finite"),
    ({"prefill_cost": [1.0, INF]}, ValueError, "prefill_cost[1] must be finite"),
    ({"decode_cost": -2.0}, ValueError, "decode_cost must be >= 0"),
    ({"decode_cost": [1.0, NAN]}, ValueError, "decode_cost[1] must be finite"),
])
def test_inference_timing_refuses_non_finite_and_negative_costs(kwargs, error, words):
    args = {"prefill_cost": 1.0, "decode_cost": 1.0, "p2p_latency": 0.0, **kwargs}
    with pytest.raises(error) as info:
        inference_timing(decode(2, 2, 3), **args)
    assert words in str(info.value)


def test_inference_timing_still_takes_exact_and_zero_costs():
    exact = inference_timing(decode(2, 2, 3), Fraction(1, 3), [1, 2], Fraction(1, 7))
    assert all(math.isfinite(t) for t in exact.token_times.ravel())
    free = inference_timing(decode(2, 1, 2), 1.0, 1.0, 0.0)
    assert free.ttft == 2.0 and free.tpot == 2.0


MODEL = model_preset("llama3-70b")


@pytest.mark.parametrize("kwargs, error, words", [
    ({"tokens": -1}, ValueError, "tokens must be >= 0, got -1"),
    ({"sequences": -3}, ValueError, "sequences must be >= 0, got -3"),
    ({"tp": 0}, ValueError, "tp must be >= 1, got 0"),
    ({"tp": 2.0}, TypeError, "tp must be an int"),
    ({"layers": -1}, ValueError, "layers must be >= 0"),
    ({"dtype": "fp16"}, ValueError, "dtype must be one of ('bf16', 'fp8'), got 'fp16'"),
])
def test_kv_cache_bytes_refuses_bad_arguments(kwargs, error, words):
    args = {"tokens": 16, "sequences": 2, **kwargs}
    with pytest.raises(error) as info:
        kv_cache_bytes(MODEL, **args)
    assert words in str(info.value)


def test_kv_cache_bytes_values_unchanged():
    d = MODEL.hidden // MODEL.heads
    assert kv_cache_bytes(MODEL, 16, 2, tp=2) == 2 * MODEL.layers * (MODEL.kv_heads // 2) \
        * d * 2 * 16 * 2
    assert kv_cache_bytes(MODEL, 0, 2) == 0
    with pytest.raises(TypeError, match="model must be a ModelConfig"):
        kv_cache_bytes("llama3-70b", 1, 1)


@pytest.mark.parametrize("args, words", [
    ((0, 0), "InferenceCalibration.hbm_efficiency must be > 0"),
    ((-0.5, 1e-4), "InferenceCalibration.hbm_efficiency must be > 0"),
    ((1.5, 1e-4), "InferenceCalibration.hbm_efficiency must be <= 1"),
    ((NAN, 1e-4), "InferenceCalibration.hbm_efficiency must be finite"),
    ((0.9, -1e-6), "InferenceCalibration.layer_overhead must be >= 0"),
    ((0.9, INF), "InferenceCalibration.layer_overhead must be finite"),
])
def test_calibration_refuses_out_of_range_constants(args, words):
    with pytest.raises(ValueError) as info:
        InferenceCalibration(*args)
    assert words in str(info.value)


def test_calibration_accepts_its_bounds_and_they_move_the_prediction():
    from ringpipe.cost.inference.model import (
        CALIBRATED_HBM_EFFICIENCY,
        CALIBRATED_LAYER_OVERHEAD,
        InferenceModel,
    )
    from ringpipe.cost.inference.workload import Workload
    from ringpipe.mesh import Mesh

    assert InferenceCalibration() == InferenceCalibration(CALIBRATED_HBM_EFFICIENCY,
                                                          CALIBRATED_LAYER_OVERHEAD)
    model = InferenceModel(model_preset("llama2-7b"), cluster_preset("dgx-a100"))
    work = Workload(128, 8)
    ideal = model.recalibrated(InferenceCalibration(1.0, 0.0)).predict(Mesh(), work)
    slower = model.recalibrated(InferenceCalibration(0.5, 0.0)).predict(Mesh(), work)
    overhead = model.recalibrated(InferenceCalibration(1.0, 1e-3)).predict(Mesh(), work)
    # decode of one sequence reads the weights: half the bandwidth, at least ~2x the time
    assert slower.tpot_s > 1.8 * ideal.tpot_s
    # τ is paid once per layer per step: 32 layers of 1 ms
    assert overhead.tpot_s == pytest.approx(ideal.tpot_s + 32e-3, rel=1e-6)


CLUSTER = cluster_preset("dgx-h100", 1)


def test_predict_names_a_tuple_layout():
    im = InferenceModel(MODEL, CLUSTER)
    with pytest.raises(TypeError, match=r"layout must be a ringpipe.Mesh, got tuple"):
        im.predict((8, 1, 1), Workload(128, 8))
    with pytest.raises(TypeError, match="work must be a Workload, got dict"):
        im.predict(Mesh(tp=8, pp=1), {"prompt_len": 128})


def test_search_names_unknown_and_bad_pins():
    work = Workload(128, 8)
    with pytest.raises(ValueError, match=r"unknown pin 'xx' in pins; valid keys are tp, pp, dp"):
        search(MODEL, CLUSTER, work, pins={"xx": 2})
    with pytest.raises(TypeError, match=r"pins\['tp'\] must be an int"):
        search(MODEL, CLUSTER, work, pins={"tp": "8"})
    with pytest.raises(TypeError, match="pins must be a dict"):
        search(MODEL, CLUSTER, work, pins=[("tp", 8)])
    pinned = search(MODEL, CLUSTER, work, pins={"tp": 8, "pp": None})
    assert {c.prediction.layout.tp for c in pinned.candidates} == {8}


def test_kv_cache_append_names_a_list_argument():
    cache = KVCache.allocate(1, 1, 1, 1, 4, np.float32)
    with pytest.raises(TypeError, match="k must be an array .* got list"):
        cache.append(0, [[1]], [[1]])
    ok = np.ones((1, 1, 1, 1), np.float32)
    with pytest.raises(TypeError, match="v must be an array .* got list"):
        cache.append(0, ok, [[1]])
    assert cache.lengths == [0]
    keys, _ = cache.append(0, ok, ok)
    assert keys.shape == (1, 1, 1, 1) and cache.lengths == [1]
