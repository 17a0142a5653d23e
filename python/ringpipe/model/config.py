"""The model: one frozen, validated description (:class:`ModelConfig`), plus input checks.

Naming rule used throughout :mod:`ringpipe.model`: ``hidden`` is the model width h,
``heads`` the attention head count a, ``kv_heads`` the key/value head count
(grouped-query attention), ``seq`` the sequence length s, ``ffn`` the MLP
width f, ``n = batch * seq`` the number of token positions (rows of a 2-D activation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringpipe.model.config_checks import ARCHITECTURE_FLAGS, check_config_fields
from ringpipe.validation import check_int

__all__ = ["ARCHITECTURE_FLAGS", "ModelConfig"]


@dataclass(frozen=True)
class ModelConfig:
    """A decoder-only transformer: ``layers`` pre-norm blocks between an input layer and an
    output head. One description, used both to build the executable NumPy model
    (:mod:`ringpipe.model.params`, :mod:`ringpipe.model.reference`) and to price it
    (:mod:`ringpipe.cost`); the presets are :mod:`ringpipe.model.presets`.

    Shape:

    - ``vocab == 0``: the input is a dense ``(batch, seq, hidden)`` array, projected by
      ``in_proj`` (hidden x hidden); the head projects to ``hidden`` and the loss is the
      mean squared error over all batch*seq*hidden elements.
    - ``vocab > 0``: the input is int token ids ``(batch, seq)`` looked up in ``embed``
      (vocab x hidden); the head gives ``vocab`` logits and the loss is the mean
      cross-entropy over all batch*seq positions.
    - ``block``: ``"transformer"`` (x += attn(norm1(x)); x += mlp(norm2(x))) or
      ``"mlp"`` (x += mlp(norm2(x)) only: the quick-run block without attention).
    - ``ffn`` defaults to ``4 * hidden``. ``dtype`` is the dtype the NumPy model computes
      in (the priced training dtype is :class:`ringpipe.cost.TrainingSpec`'s).
    - ``kv_heads`` defaults to ``heads`` (multi-head attention); fewer, dividing
      ``heads``, gives grouped-query attention (Ainslie et al. 2023, GQA): query head
      j attends with key/value head ``j // (heads / kv_heads)``.

    Architecture details (defaults: what the NumPy model builds):

    - ``name``: a label for reports ("" for none);
    - ``norm``: ``"rmsnorm"`` or ``"layernorm"``; ``biases``: the linears carry biases;
    - ``gated_mlp``: SwiGLU (three h×f matrices) instead of GeLU (two);
    - ``tied_embeddings``: the output layer shares the embedding matrix;
    - ``learned_positions``: a learned s×h position table (GPT) rather than rotary;
    - ``dropout``: dropout masks are stored for the backward;
    - ``head_dim``: the width of one head (default hidden / heads; Qwen3 uses wider);
    - mixture of experts (:mod:`ringpipe.model.moe.shape`): ``experts`` (0: dense),
      ``top_k``, ``moe_ffn`` (default ``ffn``), ``shared_experts``, ``dense_layers``
      (the first layers keep a dense MLP), ``moe_norm_topk`` and ``aux_loss_coeff``.

    The NumPy model builds every field but tied embeddings, learned positions, dropout,
    linears without biases and heads · head_dim != hidden (:meth:`check_executable`);
    the cost model prices all of them. There is no positional embedding in the NumPy model:
    causal attention already breaks the permutation symmetry, and the model exists to
    verify parallel execution, not to train well.
    """

    layers: int = 2
    hidden: int = 16
    heads: int = 4
    seq: int = 8
    vocab: int = 0
    ffn: int | None = None
    block: str = "transformer"
    norm: str = "rmsnorm"
    eps: float = 1e-5
    dtype: str = "float64"
    kv_heads: int | None = None
    name: str = ""
    biases: bool = True
    gated_mlp: bool = False
    tied_embeddings: bool = False
    learned_positions: bool = False
    dropout: bool = False
    head_dim: int | None = None
    experts: int = 0
    top_k: int = 2
    moe_ffn: int | None = None
    shared_experts: int = 0
    dense_layers: int = 0
    moe_norm_topk: bool = True
    aux_loss_coeff: float = 0.0

    def __post_init__(self) -> None:
        check_config_fields(self)

    @property
    def group_size(self) -> int:
        """r = heads / kv_heads: query heads sharing one key/value head."""
        return self.heads // self.kv_heads  # type: ignore[operator]

    @property
    def qkv_width(self) -> int:
        """Columns of ``attn.qkv.weight``: (heads + 2 * kv_heads) * head_dim."""
        return (self.heads + 2 * self.kv_heads) * self.head_dim  # type: ignore[operator]

    @property
    def attn_width(self) -> int:
        """heads · head_dim: the width of the attention context (hidden by default)."""
        return self.heads * self.head_dim  # type: ignore[operator]

    @property
    def kv_ratio(self) -> float:
        """kv_heads / heads: the size of K (and of V) relative to Q."""
        return self.kv_heads / self.heads  # type: ignore[operator]

    @property
    def np_dtype(self) -> np.dtype:
        """The NumPy dtype of parameters and activations."""
        return np.dtype(self.dtype)

    @property
    def has_attention(self) -> bool:
        return self.block == "transformer"

    @property
    def allreduces_per_block(self) -> int:
        """All-reduces per block in each direction (forward, and backward): g or f per
        tensor-parallel sub-block, so 2 for a transformer block and 1 for an MLP block."""
        return 2 if self.has_attention else 1

    # -- parameter counts: one accounting for the NumPy model and the cost model --------

    @property
    def norm_params(self) -> int:
        """Parameters of one norm: h (RMSNorm weight) or 2h (LayerNorm weight, bias)."""
        return 2 * self.hidden if self.norm == "layernorm" else self.hidden

    @property
    def attention_params(self) -> int:
        """Q, K, V and output projection weights of one layer (0 for the MLP block)."""
        if not self.has_attention:
            return 0
        return self.hidden * self.qkv_width + self.attn_width * self.hidden

    @property
    def matmul_params_per_layer(self) -> int:
        """Weights of one dense layer's matmuls: attention and the MLP."""
        return self.attention_params + (3 if self.gated_mlp else 2) * self.hidden * self.ffn  # type: ignore[operator]

    @property
    def expert_params(self) -> int:
        """One SwiGLU expert: 3 · h · moe_ffn (MoE models)."""
        return 3 * self.hidden * self.moe_ffn  # type: ignore[operator]

    @property
    def moe_block_params(self) -> int:
        """A MoE layer's MLP part: the router h·E, every expert and the shared experts."""
        return self.hidden * self.experts + (self.experts + self.shared_experts) \
            * self.expert_params

    @property
    def moe_active_params(self) -> int:
        """The MoE matmul weights one token meets: the router, top_k experts, the shared."""
        return self.hidden * self.experts + (self.top_k + self.shared_experts) \
            * self.expert_params

    @property
    def is_moe(self) -> bool:
        """Whether some layers are mixture-of-experts layers (``experts > 0``)."""
        return self.experts > 0

    def is_moe_layer(self, layer: int) -> bool:
        """Whether layer ``layer`` has a MoE block (layers from ``dense_layers`` on)."""
        return self.experts > 0 and layer >= self.dense_layers

    @property
    def moe_layers(self) -> int:
        """How many layers are MoE layers."""
        return self.layers - self.dense_layers if self.experts else 0

    def _attention_extras(self) -> int:
        h = self.hidden
        biases = self.qkv_width + h if self.has_attention and self.biases else 0
        return biases + (2 if self.has_attention else 1) * self.norm_params

    @property
    def params_per_layer(self) -> int:
        """All of one dense layer's parameters: matmuls, their biases and the norms."""
        mlp_biases = ((2 if self.gated_mlp else 1) * self.ffn + self.hidden  # type: ignore[operator]
                      if self.biases else 0)
        return self.matmul_params_per_layer + mlp_biases + self._attention_extras()

    @property
    def moe_params_per_layer(self) -> int:
        """All of one MoE layer's parameters: attention (and its biases), the norms and
        the MoE block (router and experts carry no biases)."""
        return self.attention_params + self._attention_extras() + self.moe_block_params

    def layer_params(self, layer: int) -> int:
        """Parameters of layer ``layer`` (a dense or a MoE layer)."""
        return self.moe_params_per_layer if self.is_moe_layer(layer) else self.params_per_layer

    @property
    def embedding_params(self) -> int:
        """The input layer: the token embedding (plus learned positions), or with
        ``vocab == 0`` the dense input projection ``in_proj``."""
        h = self.hidden
        if not self.vocab:
            return h * h + (h if self.biases else 0)
        return self.vocab * h + (self.seq * h if self.learned_positions else 0)

    @property
    def output_params(self) -> int:
        """The output layer: V·h weights (h·h with ``vocab == 0``), plus a bias when the
        linears have biases and the layer is not tied to the embedding (a tied output
        layer is the embedding matrix alone, as Megatron-LM's). With tied embeddings the
        last pipeline stage still holds a copy of the weights."""
        out = self.vocab or self.hidden
        return self.hidden * out + (out if self.biases and not self.tied_embeddings else 0)

    @property
    def total_params(self) -> int:
        """Parameter count of the whole model: input layer, layers, final norm, head (the
        NumPy model's tensors sum to it: :func:`ringpipe.model.params.param_shapes`)."""
        head = 0 if self.tied_embeddings else self.output_params
        layers = ((self.layers - self.moe_layers) * self.params_per_layer
                  + self.moe_layers * self.moe_params_per_layer)
        return layers + self.embedding_params + self.norm_params + head

    def num_params(self) -> int:
        """:attr:`total_params` (the name the NumPy model's callers use)."""
        return self.total_params

    # -- FLOPs (Narayanan et al., SC'21, appendix) ----------------------------------------

    def layer_matmul_flops(self, batch: int) -> float:
        """Forward FLOPs of one layer's weight matmuls on ``batch`` sequences, 2·b·s·P_mm,
        averaged over the layers: a MoE layer counts the weights a token meets
        (:attr:`moe_active_params`), so a dense model gets its one P_mm."""
        dense = self.matmul_params_per_layer
        moe = self.attention_params + self.moe_active_params
        mean = ((self.layers - self.moe_layers) * dense + self.moe_layers * moe) / self.layers
        return 2.0 * batch * self.seq * mean

    def layer_attention_flops(self, batch: int) -> float:
        """Forward FLOPs of QKᵀ and attention × V: 4·b·s²·(heads · head_dim)."""
        return 4.0 * batch * self.seq**2 * self.attn_width if self.has_attention else 0.0

    def logits_flops(self, batch: int) -> float:
        """Forward FLOPs of the logit layer: 2·b·s·h·V."""
        return 2.0 * batch * self.seq * self.hidden * self.vocab

    def check_tp(self, tp: int, *, replicate_kv: bool = False) -> None:
        """Raise unless the model can be split over ``tp`` tensor-parallel ranks.

        Training splits the key/value heads too, so ``tp`` must divide ``kv_heads``;
        inference (``replicate_kv=True``) also accepts ``kv_heads`` dividing ``tp``,
        each key/value head then replicated on ``tp / kv_heads`` ranks."""
        check_int("tp", tp)
        if self.hidden % tp:
            raise ValueError(f"hidden={self.hidden} is not divisible by tp={tp}")
        if self.has_attention and self.heads % tp:
            raise ValueError(f"heads={self.heads} is not divisible by tp={tp}")
        kv = self.kv_heads
        if self.has_attention and kv % tp and not (replicate_kv and tp % kv == 0):  # type: ignore[operator]
            need = "tp to divide kv_heads or kv_heads to divide tp" if replicate_kv else \
                "tp to divide kv_heads (inference can replicate them)"
            raise ValueError(f"kv_heads={kv} does not fit tp={tp}: needs {need}")
        if self.ffn % tp:  # type: ignore[operator]
            raise ValueError(f"ffn={self.ffn} is not divisible by tp={tp}")
        if self.experts and self.moe_ffn % tp:  # type: ignore[operator]
            raise ValueError(f"moe_ffn={self.moe_ffn} is not divisible by tp={tp}")

    def check_generates(self, where: str) -> None:
        """ValueError naming ``where`` unless greedy generation builds this model: the
        inference path (:mod:`ringpipe.model.generate`, :mod:`ringpipe.model.inference_stage`)
        builds dense GeLU MLPs only (training builds SwiGLU and MoE layers too)."""
        self.check_executable(where)
        if self.gated_mlp or self.experts:
            raise ValueError(f"{where}: generation builds dense GeLU MLPs; gated_mlp="
                             f"{self.gated_mlp}, experts={self.experts} are built for "
                             "training plans only")

    def check_executable(self, where: str) -> None:
        """ValueError naming ``where`` unless the NumPy model builds this architecture
        (it prices everything, but builds linears with biases, untied, no learned
        positions, no dropout and heads · head_dim = hidden)."""
        built = {"tied_embeddings": False, "learned_positions": False,
                 "dropout": False, "biases": True}
        wrong = [f"{k}={getattr(self, k)}" for k, v in built.items() if getattr(self, k) != v]
        if self.attn_width != self.hidden:
            wrong.append(f"head_dim={self.head_dim} (heads · head_dim != hidden)")
        if wrong:
            raise ValueError(f"{where}: the NumPy model does not build {', '.join(wrong)} "
                             "(the cost model prices it; ringpipe.model.ModelConfig)")
