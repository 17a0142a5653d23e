"""Rank TP × PP × DP inference layouts for latency or throughput, and explain the winner.

Every factorisation tp · pp · dp of the cluster's GPUs whose tp splits the heads (GQA
key/value heads split or replicated, :mod:`ringpipe.model.inference_stage`) and whose
pp does not exceed the layers is priced by :class:`~ringpipe.cost.inference.model.InferenceModel`.

* ``objective="latency"``: at the requested batch, the lowest time per output token
  (then time to first token) among the layouts that fit and meet the SLOs;
* ``objective="throughput"``: for each layout (whatever the requested batch) the batch
  (a power of two up to the largest that fits, or that largest) with the most output
  tokens per second per GPU that still meets the SLOs; layouts ranked by that rate.

:meth:`InferenceSearch.explanation` compares the winner with the best layout of the
other kind (:func:`kind`) in terms of what separates them:
TP's all-reduces per token against PP's hops and groups in flight, each group
re-reading its stage's weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ringpipe.cost.hardware.cluster import Cluster
from ringpipe.cost.inference.model import InferenceModel, InferencePrediction
from ringpipe.cost.inference.workload import Workload
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.validation import check_int

OBJECTIVES = ("latency", "throughput")


def layouts(model: ModelConfig, gpus: int) -> list[Mesh]:
    """Every tp × pp × dp = ``gpus`` the model can be split into."""
    out = []
    for tp in range(1, gpus + 1):
        if gpus % tp or model.heads % tp or (model.kv_heads % tp and tp % model.kv_heads):
            continue
        for pp in range(1, gpus // tp + 1):
            if (gpus // tp) % pp == 0 and pp <= model.layers:
                out.append(Mesh(dp=gpus // (tp * pp), pp=pp, tp=tp))
    return out


def kind(layout: Mesh) -> str:
    """"TP-heavy" (tp > pp), "PP-heavy" (pp > tp), "balanced" (tp = pp > 1) or
    "data-parallel" (tp = pp = 1): only a layout that splits a replica is called heavy."""
    if layout.tp == layout.pp:
        return "data-parallel" if layout.tp == 1 else "balanced"
    return "TP-heavy" if layout.tp > layout.pp else "PP-heavy"


def label(layout: Mesh) -> str:
    return f"tp{layout.tp}×pp{layout.pp}×dp{layout.dp}"


@dataclass(frozen=True)
class Candidate:
    """A layout's prediction at its chosen batch, and whether it meets the SLOs."""

    prediction: InferencePrediction
    batch: int
    meets_slo: bool

    def to_dict(self) -> dict[str, object]:
        p, lay = self.prediction, self.prediction.layout
        return {"tp": lay.tp, "pp": lay.pp, "dp": lay.dp, "batch": self.batch,
                "ttft_s": p.ttft_s, "tpot_s": p.tpot_s,
                "tokens_per_s_per_user": p.tokens_per_s_per_user,
                "tokens_per_s_per_gpu": p.tokens_per_s_per_gpu, "weights_gib": p.weights_gib,
                "kv_cache_gib": p.kv_cache_gib, "memory_gib": p.memory_gib,
                "max_batch": p.max_batch, "fits": p.fits, "meets_slo": self.meets_slo,
                "decode_breakdown_s": p.decode_breakdown_s}


@dataclass(frozen=True)
class InferenceSearch:
    """Candidates best first (those that fit and meet the SLOs), then the rest."""

    model: ModelConfig
    cluster: Cluster
    workload: Workload
    objective: str
    candidates: tuple[Candidate, ...]

    @property
    def feasible(self) -> tuple[Candidate, ...]:
        return tuple(c for c in self.candidates if c.prediction.fits and c.meets_slo)

    @property
    def best(self) -> Candidate | None:
        return self.feasible[0] if self.feasible else None

    def explanation(self) -> str:
        """One sentence: the winner against the best layout of the other kind."""
        best = self.best
        if best is None:
            return "no layout fits and meets the SLOs"
        w = best.prediction
        # TP-heavy against PP-heavy when both qualify, else any layout of another kind
        wk = kind(w.layout)
        others = [c for c in self.feasible if kind(c.prediction.layout) != wk]
        opposite = {"TP-heavy": "PP-heavy", "PP-heavy": "TP-heavy"}.get(wk)
        rival = next((c for c in others if kind(c.prediction.layout) == opposite),
                     others[0] if others else None)
        if rival is None:
            return f"{label(w.layout)} ({kind(w.layout)}) wins; no layout of another kind qualifies"
        r = rival.prediction
        # the side with more TP ranks pays the all-reduces, the other the pipeline hops
        tp, pp = (w, r) if (w.layout.tp, -w.layout.pp) > (r.layout.tp, -r.layout.pp) else (r, w)
        why = f"per token {self._tp_side(tp)}, while {self._pp_side(pp)}"
        if self.objective == "latency":
            return (f"{label(w.layout)} ({kind(w.layout)}) beats {label(r.layout)} "
                    f"({kind(r.layout)}) at {w.tpot_s * 1e3:.2f} vs {r.tpot_s * 1e3:.2f} ms "
                    f"per output token: {why}.")
        def gpu_ms(seconds: float, p: InferencePrediction, batch: int) -> float:
            return seconds * p.layout.world / batch * 1e3

        return (f"{label(w.layout)} ({kind(w.layout)}) beats {label(r.layout)} "
                f"({kind(r.layout)}) at {w.tokens_per_s_per_gpu:.1f} vs "
                f"{r.tokens_per_s_per_gpu:.1f} output tokens/s per GPU (batch {best.batch} "
                f"vs {rival.batch}): a sequence's prefill costs "
                f"{gpu_ms(w.ttft_s, w, best.batch):.1f} vs {gpu_ms(r.ttft_s, r, rival.batch):.1f}"
                f" GPU-ms (TP all-reduces every prompt token's activations, PP sends them "
                f"once per stage) and each of its tokens {gpu_ms(w.tpot_s, w, best.batch):.2f}"
                f" vs {gpu_ms(r.tpot_s, r, rival.batch):.2f} GPU-ms; {why}.")

    def _tp_side(self, p: InferencePrediction) -> str:
        t, ms = p.layout.tp, p.decode_breakdown_s["matmul"] * 1e3
        if t == 1:
            return (f"{label(p.layout)} reads its weights on one GPU ({ms:.2f} ms) with no "
                    "all-reduce")
        ar = p.decode_breakdown_s["allreduce"] * 1e3
        return (f"{label(p.layout)} reads its weights on {t} GPUs at once ({ms:.2f} ms) but "
                f"pays {2 * self.model.layers} all-reduces ({ar:.2f} ms)")

    def _pp_side(self, p: InferencePrediction) -> str:
        ms = p.decode_breakdown_s["matmul"] * 1e3
        if p.layout.pp == 1:
            return f"{label(p.layout)} reads them in one stage ({ms:.2f} ms) and sends no hop"
        hops = p.decode_breakdown_s["p2p"] * 1e3
        groups = min(p.layout.pp, math.ceil(self._batch(p) / p.layout.dp))
        return (f"{label(p.layout)} reads them stage after stage ({ms:.2f} ms), sends "
                f"{p.layout.pp} hops ({hops:.3f} ms) and keeps {groups} "
                f"group{'s' if groups > 1 else ''} of sequences in flight")

    def _batch(self, p: InferencePrediction) -> int:
        return next(c.batch for c in self.candidates if c.prediction is p)


def _meets(p: InferencePrediction, ttft_slo: float | None, tpot_slo: float | None) -> bool:
    return ((ttft_slo is None or p.ttft_s <= ttft_slo)
            and (tpot_slo is None or p.tpot_s <= tpot_slo))


def batch_sweep(max_batch: int, dp: int) -> list[int]:
    """Powers of two from dp up to ``max_batch``, and ``max_batch`` itself (``[dp]``
    when even dp sequences do not fit). ValueError on dp < 1 or max_batch < 0, which
    would otherwise loop forever."""
    check_int("batch_sweep: max_batch", max_batch, 0)
    check_int("batch_sweep: dp", dp, 1)
    sizes, b = [], dp
    while b < max_batch:
        sizes.append(b)
        b *= 2
    return sizes + [max_batch] if max_batch >= dp else [dp]


#: The layout sizes :func:`search` can pin.
PIN_KEYS = ("tp", "pp", "dp")


def search(model: ModelConfig, cluster: Cluster, work: Workload, objective: str = "latency",
           ttft_slo: float | None = None, tpot_slo: float | None = None,
           pins: dict[str, int] | None = None) -> InferenceSearch:
    """Price and rank every layout of the cluster's GPUs (module docstring); ``pins``
    such as ``{"tp": 8}`` keep only the layouts with those sizes (keys :data:`PIN_KEYS`,
    values ints >= 1 or None for unpinned; anything else is refused, naming the pin,
    rather than failing later as an AttributeError)."""
    if pins is not None and not isinstance(pins, Mapping):
        raise TypeError(f"search: pins must be a dict such as {{'tp': 8}}, got "
                        f"{type(pins).__name__}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    pinned = {}
    for key, value in (pins or {}).items():
        if key not in PIN_KEYS:
            raise ValueError(f"search: unknown pin {key!r} in pins; valid keys are "
                             f"{', '.join(PIN_KEYS)}")
        if value is not None:
            pinned[key] = check_int(f"search: pins[{key!r}]", value, 1)
    im = InferenceModel(model, cluster)
    found = []
    chosen = [lay for lay in layouts(model, cluster.world)
              if all(getattr(lay, k) == v for k, v in pinned.items())]
    if not chosen:
        raise ValueError(f"no layout of {cluster.world} GPUs splits {model.name} with "
                         f"{pinned}")
    for layout in chosen:
        if objective == "latency":  # at the requested batch; surplus replicas sit idle
            p = im.predict(layout, work)
            found.append(Candidate(p, work.batch, _meets(p, ttft_slo, tpot_slo)))
            continue
        # throughput: sweep the batch whatever --batch says (README), so that a layout
        # with more replicas than --batch is priced at batches that fill them
        probe = im.predict(layout, work)
        options = []
        for b in batch_sweep(probe.max_batch, layout.dp):
            p = im.predict(layout, Workload(work.prompt_len, work.output_len, b, work.dtype))
            options.append(Candidate(p, b, _meets(p, ttft_slo, tpot_slo)))
        good = [c for c in options if c.prediction.fits and c.meets_slo] or options[:1]
        found.append(max(good, key=lambda c: c.prediction.tokens_per_s_per_gpu))

    def order(c: Candidate) -> tuple:
        p = c.prediction
        ok = p.fits and c.meets_slo
        if objective == "latency":
            return (not ok, p.tpot_s, p.ttft_s)
        return (not ok, -p.tokens_per_s_per_gpu, p.tpot_s)

    return InferenceSearch(model, cluster, work, objective, tuple(sorted(found, key=order)))


def pareto_curves(model: ModelConfig, cluster: Cluster, work: Workload,
                  only: list[Mesh] | None = None) -> dict[str, list[tuple[float, float]]]:
    """Per layout (every one, or those in ``only``: pricing a sweep of every layout of
    a large cluster takes minutes), (time per output token, output tokens/s per GPU)
    over the batch sweep up to the largest batch that fits: the trade-off curves."""
    im = InferenceModel(model, cluster)
    curves = {}
    for layout in layouts(model, cluster.world) if only is None else only:
        top = im.predict(layout, Workload(work.prompt_len, work.output_len, layout.dp,
                                          work.dtype)).max_batch
        pts = []
        for b in batch_sweep(top, layout.dp):
            p = im.predict(layout, Workload(work.prompt_len, work.output_len, b, work.dtype))
            if p.fits:
                pts.append((p.tpot_s, p.tokens_per_s_per_gpu))
        if pts:
            curves[label(layout)] = pts
    return curves
