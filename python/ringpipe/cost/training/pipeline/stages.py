"""One configuration's stages as the planner prices them: the layout ``Plan`` runs, each
stage's own parameters and activation bytes.

A configuration's stages are a :class:`~ringpipe.plan.layout.PipelineLayout` (the one
object ``Plan`` executes): stage 0 holds the embedding, the last stage the output layer
and loss, and each stage k >= 0 transformer layers. Per stage s, on one GPU of its TP
group (t = TP size, b = micro-batch, s_q = sequence, h = hidden, V = vocabulary,
r = 1/t under sequence parallelism, else 1; 16-bit activations):

* **parameters**: ``layers(s)`` × the layer's, plus the embedding on stage 0 and the
  final norm and output layer on the last (a tied output layer on the embedding's rank
  is not counted twice), ÷ t;
* **held** per micro-batch in flight, from its F to its B (or I): the layers'
  activations (:func:`~ringpipe.cost.training.memory.activation_bytes`, Korthikanti et
  al. 2022); on stage 0 the embedding output's dropout mask (s_q·b·h·r bytes, with
  dropout) and the token ids (8 bytes each); on the last stage the final norm's input
  (2·s_q·b·h·r) and the fp32 logits the cross-entropy keeps for its backward
  (4·s_q·b·V/t; Megatron-LM's ``vocab_parallel_cross_entropy`` saves its fp32
  softmax), or a dense head's 16-bit output;
* **pending** per micro-batch between its I and its W (zero-bubble schedules): what the
  weight gradients need, the inputs of the four linears and their output gradients,
  2·s_q·b·h·(2·r + 1/t + f/(h·t)) for the inputs and 2·s_q·b·h·((1 + 2·kv)/t + 2·r +
  f_w/t) for the gradients per layer, ``f_w = f·(2 if SwiGLU)/h``: 32·s_q·b·h for GPT at
  t = 1, the M_W of Qi et al.
  (ICLR 2024, Table 1); the head adds its input and the logits' gradient;
* **transient**, once: while the last stage runs a backward, the 16-bit gradient of the
  logits (2·s_q·b·V/t) exists next to what is held.

With context parallelism s_q is the rank's seq / cp positions; FP8 keeps the linears'
inputs in FP8; a MoE layer holds its experts' bytes instead of the MLP's
(:class:`~ringpipe.cost.training.parallel.experts.MoeShape`).

The per-rank peak is then the schedule's own: walking each rank's actions in order
(:meth:`ringpipe.cost.training.pipeline.simulator.PipelineSimulator.peak_bytes`), F adds a
stage's held bytes, B removes them, I trades them for its pending bytes and W frees
those, so a V, an interleaved pipeline or DualPipeV's pairs are priced as they run.
"""

from __future__ import annotations

from dataclasses import dataclass

from ringpipe.cost.training.memory import activation_bytes
from ringpipe.cost.training.parallel.experts import MoeShape
from ringpipe.cost.training.recipe import Recipe
from ringpipe.model.config import ModelConfig
from ringpipe.plan.layout import PipelineLayout

__all__ = ["StageBytes", "StageLayout", "rank_params", "stage_bytes", "weight_pass_bytes"]


@dataclass(frozen=True)
class StageLayout:
    """Micro-batches, the stages and the rank of each stage of one config."""

    microbatches: int
    stages: PipelineLayout
    placement: tuple[int, ...]
    #: What the pipeline simulator knows the schedule by: its registered name, or the
    #: key of a synthesised schedule (:meth:`~.pipeline.PipelineSimulator.adopt`).
    key: object = None

    @property
    def layers(self) -> tuple[int, ...]:
        """Transformer layers per stage."""
        return self.stages.layers_per_stage

    def stages_of(self, rank: int) -> list[int]:
        """The stages pipeline rank ``rank`` holds."""
        return [s for s, r in enumerate(self.placement) if r == rank]


@dataclass(frozen=True)
class StageBytes:
    """Bytes per stage on one GPU (module docstring): ``held`` per micro-batch from F to
    B/I, ``pending`` per micro-batch from I to W, ``transient`` once at its backward."""

    held: tuple[float, ...]
    pending: tuple[float, ...]
    transient: tuple[float, ...]


def weight_pass_bytes(model: ModelConfig, batch: int, tp: int, recipe: Recipe, cp: int = 1,
                      mlp: bool = True) -> float:
    """Bytes one layer keeps between its input-gradient pass and its weight-gradient pass
    (module docstring); ``cp``: each rank holds seq / cp positions; ``mlp=False``: the
    attention's alone (a MoE layer's experts add
    :meth:`~ringpipe.cost.training.parallel.experts.MoeShape.weight_pass_bytes`)."""
    sbh = float(model.seq * batch * model.hidden) / cp
    rep = 1.0 / tp if recipe.sequence_parallel else 1.0
    fh = model.ffn / model.hidden if mlp else 0.0
    fc1 = fh * (2 if model.gated_mlp else 1)
    inputs = 2 * rep + 1.0 / tp + fh / tp  # QKV and fc1 inputs; projection and fc2 inputs
    grads = (1 + 2 * model.kv_ratio) / tp + rep + fc1 / tp + rep
    if not mlp:
        inputs, grads = rep + 1.0 / tp, (1 + 2 * model.kv_ratio) / tp + rep
    if not model.has_attention:
        inputs, grads = rep + fh / tp, fc1 / tp + rep
    return 2.0 * sbh * (inputs + grads)


def stage_bytes(model: ModelConfig, batch: int, tp: int, recompute: str, recipe: Recipe,
                layout: PipelineLayout, nbytes: int = 2, cp: int = 1, fp8: bool = False,
                moe: MoeShape | None = None) -> StageBytes:
    """Held, pending and transient bytes of every stage (module docstring); with context
    parallelism each rank holds seq / cp positions, ``fp8`` keeps the linear layers'
    inputs in FP8, and ``moe`` prices a MoE model's MoE layers
    (:class:`~ringpipe.cost.training.parallel.experts.MoeShape`)."""
    tokens = float(model.seq * batch) / cp
    rep = 1.0 / tp if recipe.sequence_parallel else 1.0
    layer = activation_bytes(model, batch, tp, recompute, recipe, cp, fp8)
    weight = weight_pass_bytes(model, batch, tp, recipe, cp)
    sparse = moe is not None and model.is_moe
    if sparse:
        moe_held = activation_bytes(model, batch, tp, recompute, recipe, cp, fp8, moe)
        moe_weight = weight_pass_bytes(model, batch, tp, recipe, cp, mlp=False) \
            + moe.weight_pass_bytes(model, batch, tp, cp, recipe)  # type: ignore[union-attr]
    held, pending, transient = [], [], []
    first = 0
    for stage in layout.stages:
        h = stage.layers * layer
        w = stage.layers * weight
        if sparse:
            n = sum(model.is_moe_layer(i) for i in range(first, first + stage.layers))
            h = (stage.layers - n) * layer + n * moe_held
            w = (stage.layers - n) * weight + n * moe_weight
        first += stage.layers
        t = 0.0
        if stage.embedding:
            h += tokens * 8.0 + (tokens * model.hidden * rep if model.dropout else 0.0)
        if stage.head:
            out = model.vocab / tp if model.vocab else model.hidden
            logits = 4.0 * tokens * out if model.vocab else nbytes * tokens * out
            h += nbytes * tokens * model.hidden * rep + logits
            w += nbytes * tokens * (model.hidden + out)
            t = nbytes * tokens * out
        held.append(h)
        pending.append(w)
        transient.append(t)
    return StageBytes(tuple(held), tuple(pending), tuple(transient))


def stage_params(model: ModelConfig, layout: PipelineLayout) -> list[float]:
    """Parameters of each stage (whole, before the TP split)."""
    out = []
    for stage in layout.stages:
        params = float(stage.layers * model.params_per_layer)
        if stage.embedding:
            params += model.embedding_params
        if stage.head:
            params += model.output_params + model.norm_params
        out.append(params)
    return out


def rank_params(model: ModelConfig, layout: StageLayout, pp: int, tp: int) -> list[float]:
    """Parameters each pipeline rank's GPUs hold (its stages', ÷ tp; a tied output
    layer on the embedding's rank is the embedding matrix itself, counted once)."""
    per_stage = stage_params(model, layout.stages)
    last = len(per_stage) - 1
    out = []
    for rank in range(pp):
        mine = layout.stages_of(rank)
        params = sum(per_stage[s] for s in mine)
        if model.tied_embeddings and 0 in mine and last in mine:
            params -= model.output_params
        out.append(params / tp)
    return out
