"""The inference cost model's accuracy tables, as printed in the docs.

``python -m ringpipe.cost.published.inference_report`` prints, in markdown, with the stored
calibration (:data:`~ringpipe.cost.inference.model.CALIBRATED_HBM_EFFICIENCY`,
:data:`~ringpipe.cost.inference.model.CALIBRATED_LAYER_OVERHEAD`):

1. the calibration table (:data:`~ringpipe.cost.published.inference_tables.VLLM_LATENCY`,
   vLLM's latency tests), measured → predicted end-to-end latency per row, with its RMS
   and worst relative error;
2. the out-of-sample tables: NVIDIA NIM's latency against concurrency (TTFT, ITL and
   output tokens/s, simulated with continuous batching:
   :mod:`ringpipe.cost.published.serving_check`), NeMo's Llama-2-7B latencies, and
   TensorRT-LLM's first-token latency and throughput, measured, predicted and relative
   error per row;
3. the directions table: TP8 against PP8 on one node, time per output token at batch 1
   and the highest output tokens/s per GPU at the largest batch that fits, for 2048-token
   prompts and 128 output tokens (the directions of NVIDIA's 2024 Llama 3.1 405B H200
   measurements: TP8 5.6× lower minimum latency, PP8 1.5× higher maximum throughput).

Errors are (predicted − measured) / measured; RMS is the root mean square over the rows.
"""

from __future__ import annotations

import math

from ringpipe.cost.hardware.cluster import cluster_preset
from ringpipe.cost.inference.model import (
    CALIBRATED_HBM_EFFICIENCY,
    CALIBRATED_LAYER_OVERHEAD,
    InferenceModel,
)
from ringpipe.cost.inference.workload import Workload
from ringpipe.cost.published.inference_tables import (
    NEMO_LLAMA2_7B,
    TRTLLM_FIRST_TOKEN,
    TRTLLM_THROUGHPUT,
    VLLM_LATENCY,
    LatencyRow,
    predictions,
)
from ringpipe.cost.published.serving_check import ServingCheck, nim_rows
from ringpipe.mesh import Mesh
from ringpipe.model.presets import model_preset

#: (model, dtype, cluster) rows of the directions table.
DIRECTIONS = (("llama3-70b", "bf16", "dgx-h100"), ("llama3-405b", "fp8", "dgx-h200"),
              ("llama3-70b", "bf16", "dgx-a100"), ("llama3-70b", "bf16", "pcie-a100"))
_NAMES = {"llama2-7b": "Llama-2-7B", "llama2-70b": "Llama-2-70B", "llama3-8b": "Llama-3.1-8B",
          "llama3-70b": "Llama-3-70B"}
_GPUS = {"dgx-a100": "A100", "dgx-h100": "H100", "dgx-h200": "H200"}


def _pct(e: float) -> str:
    return f"{e * 100:+.1f}%".replace("-", "−")


def rms(errors: list[float]) -> float:
    """√(Σ e² / n)."""
    return math.sqrt(sum(e * e for e in errors) / len(errors))


def worst(errors: list[float]) -> float:
    """The error of largest magnitude, with its sign."""
    return max(errors, key=abs)


def _errors(rows: tuple) -> tuple[list[float], list[float]]:
    pred = predictions(rows)
    return pred, [(p - r.measured) / r.measured for p, r in zip(pred, rows, strict=True)]


def calibration_table() -> str:
    """vLLM's latency tests: end-to-end latency, measured ms → predicted ms (error)."""
    rows = VLLM_LATENCY
    pred, err = _errors(rows)
    lines = [f"Calibration (η = {CALIBRATED_HBM_EFFICIENCY}, τ = "
             f"{CALIBRATED_LAYER_OVERHEAD * 1e6:.1f} µs): RMS {rms(err) * 100:.1f}%, worst "
             f"{_pct(worst(err))} ({len(rows)} rows)", "",
             "| model | GPU | TP | batch | in/out | measured | predicted | error |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r, p, e in zip(rows, pred, err, strict=True):
        lines.append(f"| {_NAMES[r.model]} | {_GPUS[r.cluster]} | {r.tp} | {r.batch} | "
                     f"{r.prompt}/{r.output} | {r.measured * 1e3:.1f} ms | {p * 1e3:.1f} ms | "
                     f"{_pct(e)} |")
    return "\n".join(lines)


def serving_table(checks: list[ServingCheck] | None = None) -> str:
    """NIM's Llama-3.3-70B latency against concurrency, measured and simulated
    (``checks``: :func:`~ringpipe.cost.published.serving_check.nim_rows`, run here if None)."""
    checks = nim_rows() if checks is None else checks
    lines = ["| concurrency | TTFT measured | simulated | error | ITL measured | simulated "
             "| error | tok/s measured | simulated | error |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    errs: dict[str, list[float]] = {"TTFT": [], "ITL": [], "output tokens/s": []}
    for c in checks:
        r = c.row
        e = [(c.ttft_s * 1e3 - r.ttft_ms) / r.ttft_ms, (c.itl_s * 1e3 - r.itl_ms) / r.itl_ms,
             (c.throughput - r.throughput) / r.throughput]
        for key, value in zip(errs, e, strict=True):
            errs[key].append(value)
        lines.append(f"| {r.concurrency} | {r.ttft_ms:.0f} ms | {c.ttft_s * 1e3:.0f} ms | "
                     f"{_pct(e[0])} | {r.itl_ms:.1f} ms | {c.itl_s * 1e3:.1f} ms | "
                     f"{_pct(e[1])} | {r.throughput:.0f} | {c.throughput:.0f} | {_pct(e[2])} |")
    lines.append("")
    lines += [f"{key}: RMS {rms(v) * 100:.1f}%, worst {_pct(worst(v))} ({len(v)} rows)"
              for key, v in errs.items()]
    return "\n".join(lines)


def nemo_table() -> str:
    """NeMo Llama-2-7B end-to-end latency, measured ms → predicted ms (error)."""
    rows = NEMO_LLAMA2_7B
    pred, err = _errors(rows)
    batches = sorted({r.batch for r in rows})
    cells: dict[tuple[str, int], dict[int, str]] = {}
    for r, p, e in zip(rows, pred, err, strict=True):
        cells.setdefault((r.cluster, r.tp), {})[r.batch] = (
            f"{r.measured * 1e3:.1f} → {p * 1e3:.1f} ({_pct(e)})")
    lines = [f"RMS {rms(err) * 100:.1f}%, worst {_pct(worst(err))} ({len(rows)} rows)", "",
             "| GPU | TP | " + " | ".join(f"batch {b}" for b in batches) + " |",
             "| --- | --- | " + " | ".join("---" for _ in batches) + " |"]
    for (cluster, tp), by_batch in sorted(cells.items()):
        lines.append(f"| {_GPUS[cluster]} | {tp} | "
                     + " | ".join(by_batch[b] for b in batches) + " |")
    lines += ["", "(measured ms → predicted ms)"]
    return "\n".join(lines)


def out_of_sample_table() -> str:
    """TensorRT-LLM first-token latency and throughput rows: measured, predicted, error."""
    lines = ["| model | GPU | TP | batch | in/out | dtype | measured | predicted | error |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    summary = []
    for rows, what in ((TRTLLM_FIRST_TOKEN, "first-token latency"),
                       (TRTLLM_THROUGHPUT, "throughput")):
        pred, err = _errors(rows)
        for r, p, e in zip(rows, pred, err, strict=True):
            if isinstance(r, LatencyRow):
                measured, predicted = f"{r.measured * 1e3:.1f} ms", f"{p * 1e3:.1f} ms"
            else:
                measured, predicted = f"{r.measured:.0f} tok/s/GPU", f"{p:.0f} tok/s/GPU"
            dtype = "fp16" if r.dtype == "bf16" else r.dtype  # the source's 16-bit label
            lines.append(f"| {_NAMES[r.model]} | {_GPUS[r.cluster]} | {r.tp} | {r.batch} | "
                         f"{r.prompt}/{r.output} | {dtype} | {measured} | {predicted} | "
                         f"{_pct(e)} |")
        summary.append(f"{what}: RMS {rms(err) * 100:.1f}%, worst {_pct(worst(err))} "
                       f"({len(rows)} rows)")
        for model in sorted({r.model for r in rows}):
            mine = [e for e, r in zip(err, rows, strict=True) if r.model == model]
            summary.append(f"{what}, {_NAMES[model]} rows: RMS {rms(mine) * 100:.1f}%, "
                           f"worst {_pct(worst(mine))}")
    return "\n".join(lines + [""] + summary)


def directions_table(prompt: int = 2048, output: int = 128) -> str:
    """TP8 vs PP8 per-token latency at batch 1 and max throughput per GPU, per cluster."""
    lines = ["| model | cluster | TP8 tpot, b=1 | PP8 tpot, b=1 | PP8/TP8 latency | "
             "TP8 max tok/s/GPU | PP8 max tok/s/GPU | PP8/TP8 throughput |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for model, dtype, cluster in DIRECTIONS:
        im = InferenceModel(model_preset(model), cluster_preset(cluster))
        one = {s: im.predict(Mesh(tp=s[0], pp=s[1]), Workload(prompt, output, 1, dtype))
               for s in ((8, 1), (1, 8))}
        most = {s: im.predict(Mesh(tp=s[0], pp=s[1]), Workload(prompt, output, p.max_batch, dtype))
                for s, p in one.items()}
        tp8, pp8 = (8, 1), (1, 8)
        lines.append(
            f"| {model} {dtype} | {cluster} | {one[tp8].tpot_s * 1e3:.1f} ms | "
            f"{one[pp8].tpot_s * 1e3:.1f} ms | {one[pp8].tpot_s / one[tp8].tpot_s:.2f}× | "
            f"{most[tp8].tokens_per_s_per_gpu:.0f} (b={one[tp8].max_batch}) | "
            f"{most[pp8].tokens_per_s_per_gpu:.0f} (b={one[pp8].max_batch}) | "
            f"{most[pp8].tokens_per_s_per_gpu / most[tp8].tokens_per_s_per_gpu:.2f}× |")
    return "\n".join(lines)


def report() -> str:
    """Every table, each under a heading, in markdown."""
    return "\n\n".join([
        "Calibration table: vLLM performance benchmark, latency tests, 32/128 tokens, batch 8",
        calibration_table(),
        "Out-of-sample table: NVIDIA NIM, Llama-3.3-70B, 2 × H100 FP8 TP2, 5000/500 tokens, "
        "AIPerf concurrency (simulated with continuous batching)",
        serving_table(),
        "Out-of-sample table: NeMo Llama-2-7B, 128/20 tokens, end-to-end latency",
        nemo_table(),
        "Out-of-sample table: TensorRT-LLM performance.md (commit 138f96d)",
        out_of_sample_table(),
        "Directions: TP8 vs PP8, 2048-token prompts, 128 output tokens",
        directions_table()]) + "\n"


if __name__ == "__main__":
    print(report(), end="")
