"""Deferred weight gradients: the W pass of zero-bubble schedules (Qi et al., ICLR 2024).

The I pass of a stage (:mod:`ringpipe.model.blocks`) records one :class:`WeightJob` per
parameter group, holding what its weight gradient needs; :func:`run_weight_jobs` turns
them into gradients later, with no communication.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ringpipe.model import functional as F
from ringpipe.model import layers as L
from ringpipe.model.config import ModelConfig
from ringpipe.model.moe.maths import expert_weight_grads

__all__ = ["WeightJob", "run_weight_jobs"]


class WeightJob(NamedTuple):
    """A deferred weight-gradient computation for parameter group ``prefix``.

    kind "linear": saved = (x, dy) -> weight = x^T dy, bias = sum_rows(dy);
    kind "matmul": saved = (x, dy) -> weight = x^T dy (no bias: the MoE router);
    kind "norm":   saved = (NormCache, dy) -> weight (and layernorm bias) gradients;
    kind "embed":  saved = (token ids (n,), dy) -> embedding rows scatter-added;
    kind "experts": saved = per local expert (x, dgate, dup, act, dy) -> the stacked
    gate, up and down weights; kind "shared": one such tuple -> the shared experts'."""

    kind: str
    prefix: str
    saved: tuple


def run_weight_jobs(config: ModelConfig, jobs: list[WeightJob]) -> dict[str, np.ndarray]:
    """The W pass on one rank: every job's parameter gradients, by parameter name."""
    grads: dict[str, np.ndarray] = {}
    for job in jobs:
        p = job.prefix
        if job.kind == "experts":
            names = [f"{p}.{part}.weight" for part in ("gate", "up", "down")]
            grads.update(zip(names, expert_weight_grads(job.saved), strict=True))
            continue
        if job.kind == "shared":
            x, dgate, dup, act, dy = job.saved
            grads.update({f"{p}.gate.weight": x.T @ dgate, f"{p}.up.weight": x.T @ dup,
                          f"{p}.down.weight": act.T @ dy})
            continue
        a, dy = job.saved
        if job.kind == "linear":
            grads[f"{p}.weight"], grads[f"{p}.bias"] = L.linear_backward_weight(a, dy)
        elif job.kind == "matmul":
            grads[f"{p}.weight"] = a.T @ dy
        elif job.kind == "norm":
            dw, db = F.norm_backward_weight(dy, a, config.norm)
            grads[f"{p}.weight"] = dw
            if db is not None:
                grads[f"{p}.bias"] = db
        else:  # "embed"
            grads[f"{p}.weight"] = F.embedding_backward(a, dy, config.vocab)
    return grads


