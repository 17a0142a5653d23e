"""A serving layout as vLLM, SGLang or TensorRT-LLM server flags.

The layout (tp, pp, dp) and batch come from ``ringpipe plan --inference``'s best
candidate; the context length is the workload's prompt plus output tokens, the batch
becomes the server's cap on concurrent sequences (all replicas together for vLLM and
SGLang, whose data-parallel option splits it; per server for TensorRT-LLM, which has
none and runs one server per replica).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ringpipe.cli.emit.flags import Emission
from ringpipe.cost.inference.search import Candidate, InferenceSearch

__all__ = ["SERVING_EMITTERS", "hf_model"]

#: ringpipe's model presets as Hugging Face repositories (the launchers' MODEL argument).
HF_MODELS = {"llama2-7b": "meta-llama/Llama-2-7b-hf", "llama2-13b": "meta-llama/Llama-2-13b-hf",
             "llama2-70b": "meta-llama/Llama-2-70b-hf", "llama3-8b": "meta-llama/Meta-Llama-3-8B",
             "llama3-70b": "meta-llama/Meta-Llama-3-70B",
             "llama3-405b": "meta-llama/Llama-3.1-405B"}


def hf_model(name: str) -> str:
    """The Hugging Face repository of preset ``name``, else ``<model>``."""
    return HF_MODELS.get(name, "<model>")


def _common(report: InferenceSearch) -> tuple[Any, int, int, dict[str, Any]]:
    best: Candidate | None = report.best
    assert best is not None
    w = report.workload
    return (best.prediction.layout, best.batch, w.prompt_len + w.output_len,
            {"hf_model": hf_model(report.model.name)})


def vllm(report: InferenceSearch) -> Emission:
    """``vllm serve`` flags."""
    mesh, batch, length, fields = _common(report)
    s: list[tuple[str, Any]] = [("--tensor-parallel-size", mesh.tp),
                                ("--pipeline-parallel-size", mesh.pp)]
    if mesh.dp > 1:
        s.append(("--data-parallel-size", mesh.dp))
    s += [("--max-model-len", length), ("--max-num-seqs", batch)]
    s += [("--quantization", "fp8")] if report.workload.dtype == "fp8" else \
        [("--dtype", "bfloat16")]
    return Emission("vllm", tuple(s), fields)


def sglang(report: InferenceSearch) -> Emission:
    """``python -m sglang.launch_server`` flags."""
    mesh, batch, length, fields = _common(report)
    s: list[tuple[str, Any]] = [("--tp-size", mesh.tp), ("--pp-size", mesh.pp)]
    if mesh.dp > 1:
        s.append(("--dp-size", mesh.dp))
    s += [("--context-length", length), ("--max-running-requests", batch)]
    s += [("--quantization", "fp8")] if report.workload.dtype == "fp8" else \
        [("--dtype", "bfloat16")]
    return Emission("sglang", tuple(s), fields)


def trtllm(report: InferenceSearch) -> Emission:
    """``trtllm-serve`` flags (one server per data-parallel replica)."""
    mesh, batch, length, fields = _common(report)
    per_server = -(-batch // mesh.dp)
    s = (("--tp_size", mesh.tp), ("--pp_size", mesh.pp), ("--max_batch_size", per_server),
         ("--max_seq_len", length))
    notes = [f"start {mesh.dp} such servers (one per data-parallel replica) behind a "
             "load balancer"] if mesh.dp > 1 else []
    if report.workload.dtype == "fp8":
        notes.append("serve an FP8 checkpoint (TensorRT-LLM reads the precision from it)")
    return Emission("trtllm", s, fields, tuple(notes))


SERVING_EMITTERS: dict[str, Callable[[InferenceSearch], Emission]] = {
    "vllm": vllm, "sglang": sglang, "trtllm": trtllm}
