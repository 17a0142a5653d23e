"""Mixture-of-experts maths on one rank: router, SwiGLU experts, combine, auxiliary loss.

The layer (:mod:`ringpipe.model.moe.shape` has the fields; Shazeer et al. 2017; Jiang et
al. 2024, Mixtral; DeepSeek-AI 2024, DeepSeek-V3), for n tokens x (n × h):

* **router** (:func:`route`): z = x W_r, p = softmax(z); each token's ``top_k`` experts
  are its k largest probabilities (ties to the lower index: a stable sort), weighted by
  g = p_sel / Σ p_sel when ``moe_norm_topk`` else g = p_sel. Backward
  (:func:`route_backward`): with dg the weights' gradient, dp_sel = (dg - Σ_j dg_j g_j)
  / Σ p_sel (normalised) or dg; plus the auxiliary loss's dp; dz = p ⊙ (dp - Σ dp ⊙ p);
* **dispatch**: the n·k (token, slot) assignments sorted by expert, stably (token order
  within an expert), so expert e sees its tokens as rows X_e in token order
  (:func:`dispatch_order`);
* **experts** (:func:`expert_forward`, :func:`expert_backward`): SwiGLU,
  y = (silu(X W_g) ⊙ X W_u) W_d, the gate and up projections column-parallel and the
  down projection row-parallel under tensor parallelism (each TP rank holds f_e / tp of
  every expert's width);
* **combine** (:func:`combine`): out_t = Σ_slot g_{t,slot} · y_{t,slot}, slots in order;
  backward dy = g · dout, dg = ⟨dout, y⟩;
* **auxiliary loss** (:func:`aux_loss`): per sequence, α · Σ_e f_e · P_e with
  f_e = E/(k·s) · count_e and P_e = (1/s) Σ_t p_{t,e}; its gradient is
  dL/dp_{t,e} = α · f_e / s (the counts are constants), times the sequence's weight in
  the objective (1 / global batch).

:func:`moe_reference_forward` / :func:`moe_reference_backward` are the single-device layer
the reference model (:mod:`ringpipe.model.reference`) runs; the parallel block
(:mod:`ringpipe.model.moe.block`) calls the same functions around its all-to-alls.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ringpipe.arrays import array_module
from ringpipe.model import functional as F
from ringpipe.model.config import ModelConfig

__all__ = ["ExpertCache", "Routing", "aux_loss", "combine", "combine_backward",
           "dispatch_order", "expert_forward", "expert_backward", "expert_weight_grads",
           "moe_reference_backward", "moe_reference_forward", "route", "route_backward"]


class Routing(NamedTuple):
    """A router's decision for n tokens."""

    probs: np.ndarray     # (n, E) softmax
    experts: np.ndarray   # (n, k) int64, expert of each slot
    weights: np.ndarray   # (n, k) combine weights g
    total: np.ndarray | None  # (n, 1) Σ p_sel when normalised, else None


def route(x: np.ndarray, w_router: np.ndarray, top_k: int, normalise: bool) -> Routing:
    """The router's forward (module docstring)."""
    xp = array_module(x)
    z = x @ w_router
    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    probs = e / xp.sum(e, axis=-1, keepdims=True)
    experts = xp.argsort(-probs, axis=-1, kind="stable")[:, :top_k].astype(np.int64)
    selected = xp.take_along_axis(probs, experts, axis=-1)
    if not normalise:
        return Routing(probs, experts, selected, None)
    total = xp.sum(selected, axis=-1, keepdims=True)
    return Routing(probs, experts, selected / total, total)


def route_backward(dweights: np.ndarray, routing: Routing,
                   dprobs_aux: np.ndarray | None = None) -> np.ndarray:
    """dL/dz (n × E) from the combine weights' gradient and the auxiliary loss's dL/dp."""
    xp = array_module(dweights)
    probs, experts, g, total = routing
    if total is not None:
        dsel = (dweights - xp.sum(dweights * g, axis=-1, keepdims=True)) / total
    else:
        dsel = dweights
    dprobs = xp.zeros_like(probs) if dprobs_aux is None else dprobs_aux.copy()
    rows = xp.arange(probs.shape[0])[:, None]
    dprobs[rows, experts] += dsel  # a token's k experts are distinct: no collisions
    return probs * (dprobs - xp.sum(dprobs * probs, axis=-1, keepdims=True))


def dispatch_order(experts: np.ndarray, num_experts: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, counts): the assignments (token-major flattening of ``experts``) sorted by
    expert, stably, and how many each expert gets."""
    xp = array_module(experts)
    flat = experts.reshape(-1)
    return xp.argsort(flat, kind="stable"), xp.bincount(flat, minlength=num_experts)


class ExpertCache(NamedTuple):
    """One expert's saved forward, for the backward and the weight gradients."""

    x: np.ndarray     # (m, h) rows
    gate: np.ndarray  # (m, f) pre-activations
    up: np.ndarray
    sig: np.ndarray
    act: np.ndarray   # (m, f) silu(gate) ⊙ up


def expert_forward(x: np.ndarray, w_gate: np.ndarray, w_up: np.ndarray,
                   w_down: np.ndarray) -> tuple[np.ndarray, ExpertCache]:
    """A SwiGLU expert (or this TP rank's slice of it: the output is then partial)."""
    gate, up = x @ w_gate, x @ w_up
    act, sig = F.swiglu_forward(gate, up)
    return act @ w_down, ExpertCache(x, gate, up, sig, act)


def expert_backward(dy: np.ndarray, cache: ExpertCache, w_gate: np.ndarray, w_up: np.ndarray,
                    w_down: np.ndarray) -> tuple[np.ndarray, tuple]:
    """(dL/dx — partial under TP —, the weight-gradient inputs (x, dgate, dup, act, dy))."""
    dgate, dup = F.swiglu_backward(dy @ w_down.T, cache.gate, cache.up, cache.sig)
    return dgate @ w_gate.T + dup @ w_up.T, (cache.x, dgate, dup, cache.act, dy)


def expert_weight_grads(saved: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stacked (gate, up, down) weight gradients of consecutive experts from the saved
    (x, dgate, dup, act, dy) of :func:`expert_backward` (zeros for an expert with no
    rows: x^T dy over zero rows)."""
    xp = array_module(saved[0][0])
    gate = xp.stack([x.T @ dg for x, dg, _, _, _ in saved])
    up = xp.stack([x.T @ du for x, _, du, _, _ in saved])
    down = xp.stack([a.T @ dy for _, _, _, a, dy in saved])
    return gate, up, down


def combine(weights: np.ndarray, y: np.ndarray) -> np.ndarray:
    """out_t = Σ_slot g_{t,slot} y_{t,slot}, slot by slot; ``y`` is (n, k, h)."""
    out = weights[:, 0:1] * y[:, 0]
    for slot in range(1, y.shape[1]):
        out = out + weights[:, slot:slot + 1] * y[:, slot]
    return out


def combine_backward(dout: np.ndarray, weights: np.ndarray,
                     y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dL/dy (n, k, h), dL/dg (n, k)) of :func:`combine`."""
    xp = array_module(dout)
    return weights[:, :, None] * dout[:, None, :], xp.sum(y * dout[:, None, :], axis=-1)


def aux_loss(config: ModelConfig, routing: Routing, counts: np.ndarray, seq: int,
             weight: float) -> tuple[float, np.ndarray | None]:
    """(this rank's part of the loss, dL/dp) of the auxiliary loss (module docstring).

    ``counts`` (b × E) are the whole sequences' assignment counts (summed over the CP
    ranks); the n = b · s_local tokens of ``routing`` are batch-major; ``seq`` the full
    length s; ``weight`` each sequence's weight in the objective (1 / global batch)."""
    if not config.aux_loss_coeff:
        return 0.0, None
    xp = array_module(routing.probs)
    b, e = counts.shape
    f = counts * (e / (config.top_k * seq))
    coeff = config.aux_loss_coeff * weight / seq
    probs = routing.probs.reshape(b, -1, e)
    loss = coeff * float(xp.sum(f * xp.sum(probs, axis=1)))
    dprobs = xp.broadcast_to((coeff * f)[:, None, :], probs.shape).reshape(-1, e)
    return loss, xp.ascontiguousarray(dprobs)


def sequence_counts(experts: np.ndarray, batch: int, num_experts: int) -> np.ndarray:
    """Assignments per (sequence, expert), b × E, float (the tokens are batch-major)."""
    xp = array_module(experts)
    seqs = xp.repeat(xp.arange(batch), experts.size // batch)
    flat = seqs * num_experts + experts.reshape(-1)
    return xp.bincount(flat, minlength=batch * num_experts).reshape(batch, num_experts) \
        .astype(np.float64)


def _weights(params: dict[str, np.ndarray], prefix: str) -> tuple[np.ndarray, ...]:
    return tuple(params[f"{prefix}.{part}.weight"] for part in ("gate", "up", "down"))


def moe_reference_forward(config: ModelConfig, params: dict[str, np.ndarray], prefix: str,
                          x: np.ndarray, batch: int, weight: float) -> tuple[np.ndarray, dict]:
    """One MoE block on one device: routed experts (+ shared), the aux loss (module docs)."""
    xp = array_module(x)
    n, h = x.shape
    routing = route(x, params[f"{prefix}.router.weight"], config.top_k, config.moe_norm_topk)
    order, counts = dispatch_order(routing.experts, config.experts)
    tokens = order // config.top_k
    gates, ups, downs = _weights(params, f"{prefix}.experts")
    y_sorted = xp.empty((n * config.top_k, h), dtype=x.dtype)
    caches, start = [], 0
    for e, count in enumerate(counts.tolist()):
        rows = slice(start, start + count)
        y_sorted[rows], c = expert_forward(x[tokens[rows]], gates[e], ups[e], downs[e])
        caches.append(c)
        start += count
    y = xp.empty_like(y_sorted)
    y[order] = y_sorted
    y = y.reshape(n, config.top_k, h)
    out = combine(routing.weights, y)
    st = {"x": x, "routing": routing, "order": order, "counts": counts, "experts": caches,
          "y": y}
    if config.shared_experts:
        shared, st["shared"] = expert_forward(x, *_weights(params, f"{prefix}.shared"))
        out = out + shared
    seq_counts = sequence_counts(routing.experts, batch, config.experts)
    st["aux"], st["daux"] = aux_loss(config, routing, seq_counts, config.seq, weight)
    return out, st


def moe_reference_backward(config: ModelConfig, params: dict[str, np.ndarray], prefix: str,
                           st: dict, dout: np.ndarray,
                           grads: dict[str, np.ndarray]) -> np.ndarray:
    """dL/dx of :func:`moe_reference_forward`; puts the block's weight gradients in
    ``grads``."""
    xp = array_module(dout)
    n, h = dout.shape
    k = config.top_k
    dy, dg = combine_backward(dout, st["routing"].weights, st["y"])
    dy_sorted = dy.reshape(n * k, h)[st["order"]]
    gates, ups, downs = _weights(params, f"{prefix}.experts")
    dx_sorted = xp.empty_like(dy_sorted)
    saved, start = [], 0
    for e, count in enumerate(st["counts"].tolist()):
        rows = slice(start, start + count)
        dx_sorted[rows], s = expert_backward(dy_sorted[rows], st["experts"][e], gates[e],
                                             ups[e], downs[e])
        saved.append(s)
        start += count
    dx_assign = xp.empty_like(dx_sorted)
    dx_assign[st["order"]] = dx_sorted
    dx_assign = dx_assign.reshape(n, k, h)
    dx = dx_assign[:, 0]
    for slot in range(1, k):
        dx = dx + dx_assign[:, slot]
    names = [f"{prefix}.experts.{part}.weight" for part in ("gate", "up", "down")]
    grads.update(zip(names, expert_weight_grads(saved), strict=True))
    if config.shared_experts:
        wg, wu, wd = _weights(params, f"{prefix}.shared")
        dxs, (x, dgs, dus, act, _) = expert_backward(dout, st["shared"], wg, wu, wd)
        dx = dx + dxs
        grads[f"{prefix}.shared.gate.weight"] = x.T @ dgs
        grads[f"{prefix}.shared.up.weight"] = x.T @ dus
        grads[f"{prefix}.shared.down.weight"] = act.T @ dout
    dz = route_backward(dg, st["routing"], st["daux"])
    grads[f"{prefix}.router.weight"] = st["x"].T @ dz
    return dx + dz @ params[f"{prefix}.router.weight"].T
