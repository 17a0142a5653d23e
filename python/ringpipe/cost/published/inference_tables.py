"""Published inference measurements: one table to calibrate on, others to check against.

The measured rows are ``data/vllm_latency.csv``, ``data/nemo_llama2_7b.csv``,
``data/trtllm_throughput.csv`` and ``data/trtllm_first_token.csv`` (each with its full
citation and its columns' meanings and units), read by
:func:`ringpipe.cost.published.loader.load_table` and turned into the :class:`LatencyRow`
and :class:`ThroughputRow` tuples below (milliseconds become seconds; a first-token row is
one output token). The latency-versus-load table ``data/nim_llama33_70b.csv`` is checked
with the serving simulator (:mod:`ringpipe.cost.published.serving_check`).

**Calibration table** (:data:`VLLM_LATENCY`): vLLM's nightly performance benchmark,
"Latency tests" (32 input tokens, 128 output tokens, a fixed batch of 8, mean end-to-end
latency), Llama-3.1-8B on one GPU and Llama-3-70B on four, on A100-SXM4-80GB, H100 and
H200 (Buildkite builds 9523, 9555 and 9513 of vllm/performance-benchmark). The
end-to-end latency is predicted as TTFT + 127 · TPOT, in 16-bit.

Two constants are fitted on it, by least squares on the relative error of its 6 rows
(:func:`calibrate`): η, the fraction of HBM bandwidth decode achieves, and τ, a fixed
overhead per layer per forward. Everything else (the training fraction of peak FLOP/s,
link α and β, HBM bandwidths) comes from :mod:`ringpipe.cost.hardware.cluster`. (Until
this table, η and τ were fitted on NeMo's 2023 TensorRT-LLM table below; a current
engine's per-layer overhead is less than half of that era's.)

**Out-of-sample tables**: :data:`NEMO_LLAMA2_7B`, NVIDIA NeMo Framework user guide, "Llama-2
Results, Inference Performance", configuration 1 (chatbot: 128 input tokens, 20 output
tokens), measured with TensorRT-LLM on 1-8 × A100 80GB SXM4 and H100 80GB HBM3, average
end-to-end latency in ms, Llama-2-7B rows (TP 1, 2, 4, 8 × batch 1, 2, 4, 8),
https://docs.nvidia.com/nemo-framework/user-guide/latest/performance/llama.html,
predicted as TTFT + 19 · TPOT; and :data:`TRTLLM_THROUGHPUT`, :data:`TRTLLM_FIRST_TOKEN`:
TensorRT-LLM ``docs/source/performance.md`` (v0.6.1 peak throughput; v0.5 first-token
latency at batch 1), commit 138f96d45f90b9667426f7c47297d8c06bafac73 of
https://github.com/NVIDIA/TensorRT-LLM: H100 in FP8 (weights and KV cache), A100 in
FP16; LLaMA 7B and 70B (the llama2-7b / llama2-70b shapes). Throughput is output tokens
per second per GPU under static batching, H100 rows only: the A100 throughput table
says "out tok/s" without "/GPU", so its TP > 1 rows are ambiguous and left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from ringpipe.cost.hardware.cluster import cluster_preset
from ringpipe.cost.inference.model import InferenceCalibration, InferenceModel
from ringpipe.cost.inference.workload import Workload
from ringpipe.cost.published.loader import load_table
from ringpipe.mesh import Mesh
from ringpipe.model.presets import model_preset
from ringpipe.validation import check_int


class LatencyRow(NamedTuple):
    """A latency measurement, in seconds (end-to-end, or first token when output is 1)."""

    model: str
    cluster: str
    tp: int
    batch: int
    prompt: int
    output: int
    dtype: str
    measured: float  # seconds (end-to-end latency or first-token latency)


class ThroughputRow(NamedTuple):
    """A throughput measurement, in output tokens per second per GPU."""

    model: str
    cluster: str
    tp: int
    batch: int
    prompt: int
    output: int
    dtype: str
    measured: float  # output tokens / s / GPU


@dataclass(frozen=True)
class LatencyCsvRow:
    """A row of ``nemo_llama2_7b.csv`` or ``vllm_latency.csv`` (end-to-end latency of a
    static batch)."""

    model: str
    cluster: str
    tp: int
    batch: int
    prompt: int
    output: int
    dtype: str
    latency_ms: float


@dataclass(frozen=True)
class TrtllmThroughput:
    """A row of ``trtllm_throughput.csv``."""

    model: str
    cluster: str
    tp: int
    batch: int
    prompt: int
    output: int
    dtype: str
    tokens_per_s_per_gpu: float


@dataclass(frozen=True)
class TrtllmFirstToken:
    """A row of ``trtllm_first_token.csv``."""

    model: str
    cluster: str
    tp: int
    batch: int
    prompt: int
    dtype: str
    first_token_ms: float


VLLM_LATENCY = tuple(
    LatencyRow(r.model, r.cluster, r.tp, r.batch, r.prompt, r.output, r.dtype,
               r.latency_ms / 1e3)
    for r in load_table("vllm_latency.csv", LatencyCsvRow).rows)

NEMO_LLAMA2_7B = tuple(
    LatencyRow(r.model, r.cluster, r.tp, r.batch, r.prompt, r.output, r.dtype,
               r.latency_ms / 1e3)
    for r in load_table("nemo_llama2_7b.csv", LatencyCsvRow).rows)

TRTLLM_THROUGHPUT = tuple(
    ThroughputRow(r.model, r.cluster, r.tp, r.batch, r.prompt, r.output, r.dtype,
                  r.tokens_per_s_per_gpu)
    for r in load_table("trtllm_throughput.csv", TrtllmThroughput).rows)

#: First-token latency: one output token (how the source measures it), predicted as TTFT.
TRTLLM_FIRST_TOKEN = tuple(
    LatencyRow(r.model, r.cluster, r.tp, r.batch, r.prompt, 1, r.dtype, r.first_token_ms / 1e3)
    for r in load_table("trtllm_first_token.csv", TrtllmFirstToken).rows)


def _models(rows: tuple,
            calibration: InferenceCalibration) -> dict[tuple[str, str], InferenceModel]:
    """One :class:`InferenceModel` per (model, cluster) of ``rows``."""
    return {(r.model, r.cluster): InferenceModel(model_preset(r.model),
                                                 cluster_preset(r.cluster), calibration)
            for r in rows}


def _predict(row: LatencyRow | ThroughputRow, im: InferenceModel) -> float:
    p = im.predict(Mesh(tp=row.tp, pp=1), Workload(row.prompt, row.output, row.batch, row.dtype))
    if isinstance(row, ThroughputRow):
        return p.tokens_per_s_per_gpu
    return p.ttft_s if row.output == 1 else p.latency_s


def _predictions(rows: tuple, models: dict[tuple[str, str], InferenceModel]) -> list[float]:
    return [_predict(r, models[r.model, r.cluster]) for r in rows]


def predictions(rows: tuple, calibration: InferenceCalibration | None = None) -> list[float]:
    """The model's value for each row (seconds, or tokens/s/GPU)."""
    return _predictions(rows, _models(rows, InferenceCalibration() if calibration is None
                                      else calibration))


def relative_errors(rows: tuple, calibration: InferenceCalibration | None = None) -> list[float]:
    """(predicted - measured) / measured per row."""
    return [(p - r.measured) / r.measured for p, r in zip(predictions(rows, calibration), rows,
                                                         strict=True)]


def calibrate(rows: tuple = VLLM_LATENCY, coarse: int = 5) -> InferenceCalibration:
    """η on a 0.01 grid in [0.40, 1.00] and, for each η, the least-squares τ >= 0.

    With pp = 1 a row's prediction is a + c·τ (τ is paid once per layer per forward),
    so the τ minimising Σ((a + c·τ)/y - 1)² is Σ (c/y)(1 - a/y) / Σ (c/y)²; the pair
    with the least RMS relative error wins (ties: the smaller η). τ is rounded to 0.1 µs.

    The grid is searched coarse to fine: every ``coarse``-th point (0.40, 0.45, …), then
    every point within ``coarse - 1`` of the best of those. That is the whole grid's
    optimum whenever the RMS error is unimodal in η, as on :data:`VLLM_LATENCY`
    (``coarse=1`` searches every point: the same η = 0.71, τ = 53.7 µs). Collective
    costs, independent of η and τ, are priced once (:meth:`InferenceModel.recalibrated`).
    """
    check_int("coarse", coarse, 1, 60)
    base = _models(rows, InferenceCalibration())
    probe = 1e-4
    scored: dict[int, tuple[float, InferenceCalibration]] = {}

    def score(k: int) -> tuple[float, InferenceCalibration]:
        if k not in scored:
            eta = k / 100
            a = _predictions(rows, {key: im.recalibrated(InferenceCalibration(eta, 0.0))
                                    for key, im in base.items()})
            shifted = _predictions(rows, {key: im.recalibrated(InferenceCalibration(eta, probe))
                                          for key, im in base.items()})
            c = [(v - a0) / probe for v, a0 in zip(shifted, a, strict=True)]
            num = sum((ci / r.measured) * (1 - ai / r.measured)
                      for ai, ci, r in zip(a, c, rows, strict=True))
            den = sum((ci / r.measured) ** 2 for ci, r in zip(c, rows, strict=True))
            tau = round(max(num / den, 0.0), 7) if den else 0.0
            rms = math.sqrt(sum(((ai + ci * tau) / r.measured - 1) ** 2
                                for ai, ci, r in zip(a, c, rows, strict=True)) / len(rows))
            scored[k] = (rms, InferenceCalibration(eta, tau))
        return scored[k]

    def best(ks: range) -> int:
        return min(ks, key=lambda k: (score(k)[0], k))

    k0 = best(range(40, 101, coarse))
    return score(best(range(max(40, k0 - coarse + 1), min(100, k0 + coarse - 1) + 1)))[1]
