"""The single-device model: full matrices, full batch, forward and backward in NumPy.

This is what every parallel execution is verified against, so it is written as plainly
as possible: one forward loop that keeps what backward needs, one backward loop in the
reverse order. The model (pre-norm, as GPT-2)::

    x = embed[tokens]                 or  x = batch @ W_in + b_in
    for each block:
        x = x + (attention(norm1(x) @ W_qkv + b_qkv) @ W_out + b_out)   # transformer only
        x = x + (gelu(norm2(x) @ W_fc1 + b_fc1) @ W_fc2 + b_fc2)
              (SwiGLU with gated_mlp: silu(h W_gate + b_gate) ⊙ (h W_fc1 + b_fc1);
               a MoE layer: x + moe(norm2(x)), :mod:`ringpipe.model.moe.maths`)
    output = final_norm(x) @ W_head + b_head
    loss = mean cross-entropy over batch*seq positions   (vocab > 0)
         = mean of (output - targets)^2 over batch*seq*hidden elements   (vocab == 0)

Attention is multi-head causal scaled dot-product attention (Vaswani et al. 2017) and
GeLU is the tanh approximation; see :mod:`ringpipe.model.functional` for the formulas.
A MoE model's objective adds the auxiliary load-balancing loss, averaged over the
sequences (:func:`ringpipe.model.moe.maths.aux_loss`); ``loss`` reports the language-model
loss alone and ``aux_loss`` the auxiliary one, as Megatron-LM logs them.
Activations are 2-D ``(batch*seq, width)``; the linear layers are written inline as
``x @ W + b`` (and backward ``dx = dy @ W.T``, ``dW = x.T @ dy``, ``db = sum_rows(dy)``)
in the same operation order as the tensor-parallel layers, which makes a tp=1 stage
bitwise equal to this reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringpipe.model import functional as F
from ringpipe.model.config import ModelConfig
from ringpipe.model.inputs import check_batch, check_targets
from ringpipe.model.moe.maths import moe_reference_backward, moe_reference_forward
from ringpipe.model.params import check_params


@dataclass(frozen=True)
class ReferenceResult:
    """``loss`` (float), ``output`` (the head's output, ``(batch, seq, vocab or hidden)``),
    ``grads`` (dL/dparam for every parameter, full shapes, same names) and ``aux_loss``
    (the MoE auxiliary loss, 0 for a dense model)."""

    loss: float
    output: np.ndarray
    grads: dict[str, np.ndarray]
    aux_loss: float = 0.0


def _put_norm(grads: dict[str, np.ndarray], prefix: str, dw: np.ndarray,
              db: np.ndarray | None) -> None:
    grads[f"{prefix}.weight"] = dw
    if db is not None:
        grads[f"{prefix}.bias"] = db


def reference_forward_backward(config: ModelConfig, params: dict[str, np.ndarray],
                               batch: np.ndarray, targets: np.ndarray) -> ReferenceResult:
    """Loss, output and all parameter gradients of the model on one device.

    ``batch``: token ids ``(B, seq)`` if ``config.vocab`` else ``(B, seq, hidden)``
    floats; ``targets``: class ids ``(B, seq)`` or ``(B, seq, hidden)`` floats.
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
    check_params(config, params)
    batch = check_batch(config, batch)
    targets = check_targets(config, targets, batch.shape[0])
    P, kind, eps = params, config.norm, config.eps
    b, s = batch.shape[0], config.seq
    n = b * s

    def norm(x: np.ndarray, prefix: str) -> tuple[np.ndarray, F.NormCache]:
        return F.norm_forward(x, P[f"{prefix}.weight"], P.get(f"{prefix}.bias"), kind, eps)

    # ---- forward -------------------------------------------------------------------
    if config.vocab:
        x = P["embed.weight"][batch.reshape(n)]
    else:
        inp = batch.reshape(n, config.hidden)
        x = inp @ P["in_proj.weight"] + P["in_proj.bias"]
    saved = []
    aux = 0.0
    for i in range(config.layers):
        p = f"layers.{i}"
        st: dict = {}
        if config.has_attention:
            st["h1"], st["n1"] = norm(x, f"{p}.norm1")
            qkv = st["h1"] @ P[f"{p}.attn.qkv.weight"] + P[f"{p}.attn.qkv.bias"]
            st["ctx"], st["attn"] = F.attention_forward(qkv, b, s, config.heads,
                                                        config.kv_heads)
            x = x + (st["ctx"] @ P[f"{p}.attn.out.weight"] + P[f"{p}.attn.out.bias"])
        st["h2"], st["n2"] = norm(x, f"{p}.norm2")
        if config.is_moe_layer(i):
            out_moe, st["moe"] = moe_reference_forward(config, P, f"{p}.moe", st["h2"], b,
                                                       1.0 / b)
            aux += st["moe"]["aux"]
            x = x + out_moe
            saved.append(st)
            continue
        st["pre"] = st["h2"] @ P[f"{p}.mlp.fc1.weight"] + P[f"{p}.mlp.fc1.bias"]
        if config.gated_mlp:
            st["gate"] = st["h2"] @ P[f"{p}.mlp.gate.weight"] + P[f"{p}.mlp.gate.bias"]
            st["act"], st["sig"] = F.swiglu_forward(st["gate"], st["pre"])
        else:
            st["act"], st["tanh"] = F.gelu_forward(st["pre"])
        x = x + (st["act"] @ P[f"{p}.mlp.fc2.weight"] + P[f"{p}.mlp.fc2.bias"])
        saved.append(st)
    hf, nf = norm(x, "final_norm")
    out = hf @ P["head.weight"] + P["head.bias"]
    if config.vocab:
        loss, dout = F.cross_entropy(out, targets.reshape(n))
    else:
        loss, dout = F.mean_squared_error(out, targets.reshape(n, config.hidden))

    # ---- backward ------------------------------------------------------------------
    grads: dict[str, np.ndarray] = {}
    grads["head.weight"] = hf.T @ dout
    grads["head.bias"] = np.sum(dout, axis=0)
    dh = dout @ P["head.weight"].T
    _put_norm(grads, "final_norm", *F.norm_backward_weight(dh, nf, kind))
    dx = F.norm_backward_input(dh, P["final_norm.weight"], nf, kind)
    for i in reversed(range(config.layers)):
        p, st = f"layers.{i}", saved[i]
        # MLP branch: x_out = x_mid + fc2(gelu(fc1(norm2(x_mid)))), SwiGLU or MoE
        if config.is_moe_layer(i):
            dh2 = moe_reference_backward(config, P, f"{p}.moe", st["moe"], dx, grads)
        else:
            dh2 = _mlp_backward(config, P, p, st, dx, grads)
        _put_norm(grads, f"{p}.norm2", *F.norm_backward_weight(dh2, st["n2"], kind))
        dx = dx + F.norm_backward_input(dh2, P[f"{p}.norm2.weight"], st["n2"], kind)
        if config.has_attention:
            # attention branch: x_mid = x_in + out(attention(qkv(norm1(x_in))))
            grads[f"{p}.attn.out.weight"] = st["ctx"].T @ dx
            grads[f"{p}.attn.out.bias"] = np.sum(dx, axis=0)
            dctx = dx @ P[f"{p}.attn.out.weight"].T
            dqkv = F.attention_backward(dctx, st["attn"], config.kv_heads)
            grads[f"{p}.attn.qkv.weight"] = st["h1"].T @ dqkv
            grads[f"{p}.attn.qkv.bias"] = np.sum(dqkv, axis=0)
            dh1 = dqkv @ P[f"{p}.attn.qkv.weight"].T
            _put_norm(grads, f"{p}.norm1", *F.norm_backward_weight(dh1, st["n1"], kind))
            dx = dx + F.norm_backward_input(dh1, P[f"{p}.norm1.weight"], st["n1"], kind)
    if config.vocab:
        dembed = F.embedding_backward(batch.reshape(n), dx, config.vocab)
        grads["embed.weight"] = dembed
    else:
        grads["in_proj.weight"] = inp.T @ dx
        grads["in_proj.bias"] = np.sum(dx, axis=0)
    output = out.reshape(b, s, out.shape[1])
    ordered = {name: grads[name] for name in P}
    return ReferenceResult(loss=float(loss), output=output, grads=ordered, aux_loss=aux)


def _mlp_backward(config: ModelConfig, P: dict[str, np.ndarray], p: str, st: dict,
                  dx: np.ndarray, grads: dict[str, np.ndarray]) -> np.ndarray:
    """dL/d(norm2 output) of the dense MLP (GeLU or SwiGLU); puts its weight gradients."""
    grads[f"{p}.mlp.fc2.weight"] = st["act"].T @ dx
    grads[f"{p}.mlp.fc2.bias"] = np.sum(dx, axis=0)
    dact = dx @ P[f"{p}.mlp.fc2.weight"].T
    if config.gated_mlp:
        dgate, dpre = F.swiglu_backward(dact, st["gate"], st["pre"], st["sig"])
        grads[f"{p}.mlp.gate.weight"] = st["h2"].T @ dgate
        grads[f"{p}.mlp.gate.bias"] = np.sum(dgate, axis=0)
    else:
        dpre = F.gelu_backward(dact, st["pre"], st["tanh"])
    grads[f"{p}.mlp.fc1.weight"] = st["h2"].T @ dpre
    grads[f"{p}.mlp.fc1.bias"] = np.sum(dpre, axis=0)
    dh2 = dpre @ P[f"{p}.mlp.fc1.weight"].T
    if config.gated_mlp:
        dh2 = dgate @ P[f"{p}.mlp.gate.weight"].T + dh2
    return dh2
