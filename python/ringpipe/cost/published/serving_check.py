"""The serving simulator against a published latency-versus-load table (out of sample).

``data/nim_llama33_70b.csv`` (NVIDIA's NIM benchmarking guide: Llama-3.3-70B-Instruct on
2 × H100, FP8, TP2, 5000 input and 500 output tokens, AIPerf at concurrency 1 to 250)
gives, per concurrency, the average time to first token, inter-token latency and output
tokens per second. :func:`nim_rows` simulates each with the stored calibration: the
continuous-batching scheduler (vLLM-like defaults: KV blocks of 16, at most 256 requests
and 8192 positions per iteration, chunked prefill) in a closed loop of that many clients,
each sending ``REQUESTS_PER_CLIENT`` requests, the first a warm-up, priced per iteration
by the inference model (:mod:`ringpipe.cost.inference.serving`). Nothing is fitted on
this table; the KV pool (what 90% of HBM leaves after the weights) decides where the
queue starts, as it does on the measured system past concurrency 50.
"""

from __future__ import annotations

from dataclasses import dataclass

from ringpipe.cost.hardware.cluster import cluster_preset
from ringpipe.cost.inference.model import InferenceModel
from ringpipe.cost.inference.serving import Load, simulate
from ringpipe.cost.published.loader import load_table
from ringpipe.mesh import Mesh
from ringpipe.model.presets import model_preset

__all__ = ["NimServing", "ServingCheck", "nim_rows"]

#: Requests each closed-loop client sends in the simulation (its first is a warm-up).
REQUESTS_PER_CLIENT = 8


@dataclass(frozen=True)
class NimServing:
    """A row of ``nim_llama33_70b.csv``."""

    model: str
    cluster: str
    tp: int
    isl: int
    osl: int
    dtype: str
    concurrency: int
    ttft_ms: float
    itl_ms: float
    throughput: float


@dataclass(frozen=True)
class ServingCheck:
    """One published row and the simulator's mean TTFT, mean ITL (seconds) and output
    tokens per second at the same concurrency."""

    row: NimServing
    ttft_s: float
    itl_s: float
    throughput: float


def nim_rows() -> list[ServingCheck]:
    """Every row of the NIM table, measured and simulated (module docstring)."""
    out = []
    models: dict[tuple[str, str], InferenceModel] = {}
    for r in load_table("nim_llama33_70b.csv", NimServing).rows:
        im = models.setdefault((r.model, r.cluster), InferenceModel(
            model_preset(r.model), cluster_preset(r.cluster)))
        n = max(REQUESTS_PER_CLIENT * r.concurrency, 40)
        stats = simulate(im, Mesh(tp=r.tp), Load(r.isl, r.osl, n, concurrency=r.concurrency),
                         dtype=r.dtype)
        assert stats is not None, f"{r.model} tp{r.tp} does not fit"
        out.append(ServingCheck(r, stats.mean("ttft"), stats.mean("itl"),
                                stats.throughput_tokens_per_s))
    return out
