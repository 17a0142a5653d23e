"""A training plan as Megatron-LM, NeMo, torchtitan or DeepSpeed settings.

Each emitter takes one candidate of the search and returns its :class:`Emission`, or a
sentence saying why the tool cannot run it as planned (a schedule it lacks, an uneven
layer split it cannot express, selective recomputation it has no setting for); the
caller then tries the next candidate (:func:`ringpipe.cli.emit.emit_training`). The
values come from the candidate (``Config``: mesh, schedule, v, micro-batch,
recomputation), the search's training spec (global batch, dtype, recipe) and the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ringpipe.cli.emit.flags import Emission, tool_data
from ringpipe.cost.training.prediction import StepPrediction
from ringpipe.cost.training.search import SearchReport
from ringpipe.schedules.registry import PYTORCH_SCHEDULE_CLASSES

__all__ = ["TRAINING_EMITTERS"]

Result = Emission | str


def _uniform(p: StepPrediction, report: SearchReport) -> bool:
    """Whether ``p`` puts the same number of layers on every stage, the embedding on the
    first and the head on the last (the split every tool's defaults give)."""
    c = p.config
    return c.split_name == "even" and report.model.layers % (c.pp * c.chunks) == 0


def _cannot(tool: str, p: StepPrediction, report: SearchReport,
            any_layout: bool = False) -> str | None:
    """Why ``tool`` cannot run ``p``'s pipeline as planned (None when it can);
    ``any_layout``: the tool takes an explicit stage layout (Megatron-LM)."""
    c, data = p.config, tool_data(tool)
    if report.model.is_moe:
        return (f"{report.model.name or 'the model'} is a mixture-of-experts model, and "
                "--emit does not print expert settings (experts, router, EP) yet")
    if c.pp > 1 and c.schedule not in data.schedules:
        return (f"{data.tool} has no {c.schedule} schedule (it runs "
                f"{', '.join(data.schedules)})")
    if not any_layout and not _uniform(p, report):
        return (f"{data.tool} splits the {report.model.layers} layers evenly over the "
                f"pp·v = {c.pp * c.chunks} stages and cannot express this plan's "
                f"{c.split_name} split ({p.layout})")
    return None


def _fields(report: SearchReport) -> dict[str, Any]:
    cl = report.cluster
    return {"nodes": cl.nodes, "gpus_per_node": cl.gpus_per_node}


def megatron(p: StepPrediction, report: SearchReport) -> Result:
    """Megatron-LM's ``pretrain_gpt.py`` flags."""
    if (why := _cannot("megatron", p, report, any_layout=True)) is not None:
        return why
    c, m, t = p.config, report.model, report.training
    r = t.recipe
    s: list[tuple[str, Any]] = [("--tensor-model-parallel-size", c.tp),
                                ("--pipeline-model-parallel-size", c.pp)]
    if c.cp > 1:  # ring attention over the sequence, as ringpipe prices it
        s.append(("--context-parallel-size", c.cp))
    if c.pp > 1 and not _uniform(p, report):
        # Megatron-core's layout syntax is ringpipe's (ringpipe.plan.layout); it also
        # fixes the virtual stages per rank (stages / pp)
        s.append(("--pipeline-model-parallel-layout", p.layout))
    elif c.chunks > 1:
        s.append(("--num-layers-per-virtual-pipeline-stage", m.layers // (c.pp * c.chunks)))
    s += [(f, True) for f, on in (("--sequence-parallel", r.sequence_parallel and c.tp > 1),
                                  ("--use-distributed-optimizer", r.distributed_optimizer),
                                  ("--overlap-grad-reduce", r.overlap_grad_reduce),
                                  ("--overlap-param-gather",
                                   r.overlap_grad_reduce and r.distributed_optimizer)) if on]
    if c.recompute != "none":
        s.append(("--recompute-granularity", c.recompute))
    if c.recompute == "full":
        s += [("--recompute-method", "uniform"), ("--recompute-num-layers", 1)]
    s += [("--micro-batch-size", c.microbatch_size), ("--global-batch-size", t.global_batch),
          ("--num-layers", m.layers), ("--hidden-size", m.hidden),
          ("--ffn-hidden-size", m.ffn), ("--num-attention-heads", m.heads)]
    if m.kv_heads != m.heads:
        s += [("--group-query-attention", True), ("--num-query-groups", m.kv_heads)]
    s += [("--seq-length", m.seq), ("--max-position-embeddings", m.seq)]
    s += [(f, True) for f, on in (("--swiglu", m.gated_mlp),
                                  ("--untie-embeddings-and-output-weights",
                                   not m.tied_embeddings),
                                  ("--disable-bias-linear", not m.biases),
                                  ("--use-flash-attn", r.flash_attention)) if on]
    s += [("--normalization", "RMSNorm" if m.norm == "rmsnorm" else "LayerNorm"),
          ("--position-embedding-type", "learned_absolute" if m.learned_positions else "rope"),
          ("--bf16" if t.dtype == "bf16" else "--fp16", True)]
    return Emission("megatron", tuple(s), _fields(report),
                    ("add the data, tokenizer (it sets the vocabulary), optimizer and "
                     "checkpoint flags of your run",))


def nemo(p: StepPrediction, report: SearchReport) -> Result:
    """NeMo 2.0 recipe overrides (``nemo llm pretrain --factory ...``)."""
    if (why := _cannot("nemo", p, report)) is not None:
        return why
    c, m, t = p.config, report.model, report.training
    r, cl = t.recipe, report.cluster
    recompute = None if c.recompute == "none" else c.recompute
    s: list[tuple[str, Any]] = [
        ("trainer.num_nodes", cl.nodes), ("trainer.devices", cl.gpus_per_node),
        ("trainer.strategy.tensor_model_parallel_size", c.tp),
        ("trainer.strategy.context_parallel_size", c.cp),
        ("trainer.strategy.pipeline_model_parallel_size", c.pp),
        ("trainer.strategy.virtual_pipeline_model_parallel_size",
         c.chunks if c.chunks > 1 else None),
        ("trainer.strategy.sequence_parallel", r.sequence_parallel and c.tp > 1),
        ("trainer.strategy.ddp.overlap_grad_reduce", r.overlap_grad_reduce),
        ("trainer.strategy.ddp.overlap_param_gather",
         r.overlap_grad_reduce and r.distributed_optimizer),
        ("optim.config.use_distributed_optimizer", r.distributed_optimizer),
        ("data.micro_batch_size", c.microbatch_size), ("data.global_batch_size", t.global_batch),
        ("data.seq_length", m.seq),
        ("model.config.recompute_granularity", str(recompute)),
        ("model.config.recompute_method", "uniform" if c.recompute == "full" else "None"),
        ("model.config.recompute_num_layers", 1 if c.recompute == "full" else None)]
    recipe = m.name.replace("-", "_") if m.name and "+" not in m.name else "<recipe>"
    return Emission("nemo", tuple(s), {"recipe": recipe},
                    ("the recipe sets the model's shape; check it matches "
                     f"{m.name or 'your model'}",))


def torchtitan(p: StepPrediction, report: SearchReport) -> Result:
    """A torchtitan job-config TOML (``[training]``, ``[parallelism]``,
    ``[activation_checkpoint]``)."""
    if (why := _cannot("torchtitan", p, report)) is not None:
        return why
    c, m, t = p.config, report.model, report.training
    if c.schedule == "zb-h1" and c.chunks != 1:  # pragma: no cover - zb-h1 has v = 1
        return "torchtitan's InterleavedZeroBubble with v > 1 is not ringpipe's zb-h1"
    shard = t.recipe.distributed_optimizer
    s: list[tuple[str, Any]] = [
        ("training.local_batch_size", t.global_batch // c.dp),
        ("training.global_batch_size", t.global_batch), ("training.seq_len", m.seq),
        ("training.mixed_precision_param", "bfloat16" if t.dtype == "bf16" else "float32"),
        ("parallelism.data_parallel_replicate_degree", 1 if shard else c.dp),
        ("parallelism.data_parallel_shard_degree", c.dp if shard else 1),
        ("parallelism.tensor_parallel_degree", c.tp),
        ("parallelism.context_parallel_degree", c.cp),
        ("parallelism.pipeline_parallel_degree", c.pp)]
    if c.pp > 1:
        names = {v: k[len("Schedule"):] for k, v in PYTORCH_SCHEDULE_CLASSES.items()}
        s += [("parallelism.pipeline_parallel_schedule", names[c.schedule]),
              ("parallelism.pipeline_parallel_microbatch_size", c.microbatch_size),
              ("parallelism.pipeline_parallel_layers_per_stage",
               m.layers // (c.pp * c.chunks))]
    s.append(("activation_checkpoint.mode", c.recompute))
    if c.recompute == "selective":
        s.append(("activation_checkpoint.selective_ac_option", "op"))
    notes = ["[model] name and flavor: pick the ones matching "
             f"{m.name or 'your model'}; [job], [optimizer], [training] steps as usual"]
    if shard and c.dp > 1:
        notes.append("torchtitan shards data parallelism with FSDP2 (weights, gradients "
                     "and optimizer state; ringpipe priced ZeRO-1's optimizer sharding): "
                     "less memory, more DP traffic than predicted")
    if t.dtype != "bf16":
        notes.append(f"torchtitan trains in bf16 or fp32; the plan assumed {t.dtype}")
    return Emission("torchtitan", tuple(s), _fields(report), tuple(notes))


def deepspeed(p: StepPrediction, report: SearchReport) -> Result:
    """A DeepSpeed config (JSON), with the PipelineModule arguments as a comment."""
    if (why := _cannot("deepspeed", p, report)) is not None:
        return why
    c, t = p.config, report.training
    if c.cp > 1:
        return ("DeepSpeed's config has no context parallelism (its Ulysses sequence "
                "parallelism splits attention heads, not the sequence ring priced here)")
    if c.recompute == "selective":
        return ("DeepSpeed recomputes whole layers only (activation_checkpoint_interval); "
                "it has no selective recomputation")
    if c.tp > 1 and c.pp > 1:
        return ("DeepSpeed documents AutoTP (tensor_parallel) and PipelineModule "
                "separately, not together (Megatron-DeepSpeed runs TP with PP: try "
                "--emit megatron)")
    s: list[tuple[str, Any]] = [
        ("train_batch_size", t.global_batch),
        ("train_micro_batch_size_per_gpu", c.microbatch_size),
        ("gradient_accumulation_steps", t.global_batch // (c.dp * c.microbatch_size)),
        ("bf16.enabled" if t.dtype == "bf16" else "fp16.enabled", True),
        ("zero_optimization.stage", 1 if t.recipe.distributed_optimizer else 0)]
    if c.tp > 1:
        s.append(("tensor_parallel.autotp_size", c.tp))
    if c.pp > 1:
        s += [("PipelineModule.num_stages", c.pp),
              ("PipelineModule.activation_checkpoint_interval",
               1 if c.recompute == "full" else 0)]
    return Emission("deepspeed", tuple(s), _fields(report))


TRAINING_EMITTERS: dict[str, Callable[[StepPrediction, SearchReport], Result]] = {
    "megatron": megatron, "nemo": nemo, "torchtitan": torchtitan, "deepspeed": deepspeed}
