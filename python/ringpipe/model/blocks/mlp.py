"""The dense MLP of a block over a TP group: GeLU or SwiGLU (``gated_mlp``).

Megatron-LM's split (Shoeybi et al. 2019, fig. 3): fc1 (and SwiGLU's gate) column-
parallel, fc2 row-parallel, so the forward has one g all-reduce and the input-gradient
pass one f:

    GeLU:   y = gelu(h W_fc1 + b_fc1) W_fc2 + b_fc2
    SwiGLU: y = (silu(h W_gate + b_gate) ⊙ (h W_fc1 + b_fc1)) W_fc2 + b_fc2

(Shazeer 2020; fc1 is the "up" projection). The operations run in the order of the
reference (:mod:`ringpipe.model.reference`), so a tp = 1 stage is bitwise equal to it.
"""

from __future__ import annotations

import numpy as np

from ringpipe.model import functional as F
from ringpipe.model import layers as L
from ringpipe.model.blocks.weight_jobs import WeightJob
from ringpipe.model.config import ModelConfig

__all__ = ["mlp_backward_input", "mlp_forward"]


def _weights(shards: list[dict[str, np.ndarray]], name: str) -> list[np.ndarray]:
    return [s[name] for s in shards]


def mlp_forward(config: ModelConfig, p: str, shards: list[dict[str, np.ndarray]],
                h2: list[np.ndarray], all_reduce: L.AllReduce,
                caches: list[dict]) -> list[np.ndarray]:
    """The MLP's output on every rank (after its g all-reduce); fills ``caches``."""
    pre = L.column_parallel_forward(h2, _weights(shards, f"{p}.mlp.fc1.weight"),
                                    _weights(shards, f"{p}.mlp.fc1.bias"))
    gates = None
    if config.gated_mlp:
        gates = L.column_parallel_forward(h2, _weights(shards, f"{p}.mlp.gate.weight"),
                                          _weights(shards, f"{p}.mlp.gate.bias"))
    act = []
    for t, z in enumerate(pre):
        if gates is None:
            a, caches[t]["tanh"] = F.gelu_forward(z)
        else:
            a, caches[t]["sig"] = F.swiglu_forward(gates[t], z)
            caches[t]["gate"] = gates[t]
        caches[t]["h2"], caches[t]["pre"], caches[t]["act"] = h2[t], z, a
        act.append(a)
    return L.row_parallel_forward(act, _weights(shards, f"{p}.mlp.fc2.weight"),
                                  _weights(shards, f"{p}.mlp.fc2.bias"), all_reduce)


def mlp_backward_input(config: ModelConfig, p: str, shards: list[dict[str, np.ndarray]],
                       caches: list[dict], dys: list[np.ndarray], all_reduce: L.AllReduce,
                       jobs: list[list]) -> list[np.ndarray]:
    """dL/d(norm2 output) on every rank (after its f all-reduce); appends weight jobs
    (:class:`~ringpipe.model.blocks.weight_jobs.WeightJob`)."""
    dact = L.row_parallel_backward_input(dys, _weights(shards, f"{p}.mlp.fc2.weight"))
    partial = []
    for t, c in enumerate(caches):
        jobs[t].append(WeightJob("linear", f"{p}.mlp.fc2", (c["act"], dys[t])))
        if config.gated_mlp:
            dgate, dpre = F.swiglu_backward(dact[t], c["gate"], c["pre"], c["sig"])
            jobs[t].append(WeightJob("linear", f"{p}.mlp.gate", (c["h2"], dgate)))
        else:
            dpre = F.gelu_backward(dact[t], c["pre"], c["tanh"])
        jobs[t].append(WeightJob("linear", f"{p}.mlp.fc1", (c["h2"], dpre)))
        dh = dpre @ shards[t][f"{p}.mlp.fc1.weight"].T
        if config.gated_mlp:
            dh = dgate @ shards[t][f"{p}.mlp.gate.weight"].T + dh
        partial.append(dh)
    return L.f_backward(partial, all_reduce)
