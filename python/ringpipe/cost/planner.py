"""The planner: enumerate TP × PP × DP configurations, drop what does not fit, rank.

Search space (each dimension can be pinned):

* every factorisation tp · pp · dp of the cluster's GPUs where tp divides the heads
  (and KV heads), pp divides the layers (or, with ``allow_uneven``, is at most the
  layer count) and dp divides the global batch;
* schedules: GPipe, 1F1B, interleaved 1F1B (v = 2 .. ``max_chunks`` chunks per rank
  that divide the layers per rank) and ZB-H1; with pp = 1 there is no pipeline and
  only 1F1B (plain gradient accumulation) is kept;
* micro-batch sizes 1, 2, 4, 8, 16 that divide the per-replica batch;
* recomputation none, then selective, then full: a heavier mode only does more work,
  so it is priced only when the lighter one does not fit.

Each candidate is priced by :class:`ringpipe.cost.step_time.StepModel` (one instance
for the whole search, so schedules, simulator orders and collective profiles are
built once). Fitting candidates are ranked by predicted step time; the ones that do
not fit follow, smallest memory first.

Layout: ranks follow :mod:`ringpipe.mesh` (tp fastest), so a TP group of up to
``gpus_per_node`` GPUs stays inside one node and PP/DP groups stride across nodes
(Narayanan et al., SC'21, §3.3: TP inside a node, PP across nodes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ringpipe.cost.cluster import GIB, Cluster
from ringpipe.cost.models import RECOMPUTE, ModelSpec, TrainingSpec
from ringpipe.cost.pipeline import chunks_for
from ringpipe.cost.step_time import Config, Prediction, StepModel
from ringpipe.schedules.registry import SCHEDULES, schedule_spec

#: Searched by default; 1F1B first, so that a mesh whose weights alone overflow is
#: represented by its lowest-memory schedule.
DEFAULT_SCHEDULES = ("1f1b", "zb-h1", "interleaved-1f1b", "gpipe")
DEFAULT_MICROBATCH_SIZES = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class SearchSpace:
    """Pins (``None``: search) and the ranges searched. Micro-batch size and
    recomputation are pinned through :class:`TrainingSpec`."""

    tp: int | None = None
    pp: int | None = None
    dp: int | None = None
    schedule: str | None = None
    chunks: int | None = None
    schedules: tuple[str, ...] = DEFAULT_SCHEDULES
    microbatch_sizes: tuple[int, ...] = DEFAULT_MICROBATCH_SIZES
    max_chunks: int = 8
    allow_uneven: bool = False

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "dp", "chunks"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name in ((self.schedule,) if self.schedule else ()) + self.schedules:
            schedule_spec(name)  # ValueError naming the known schedules
        if self.schedule and self.chunks is not None:
            chunks_for(self.schedule, self.chunks)  # e.g. 1f1b with chunks=2


@dataclass(frozen=True)
class PlanReport:
    """The ranked candidates (best first) and what they were planned for."""

    model: ModelSpec
    training: TrainingSpec
    cluster: Cluster
    candidates: tuple[Prediction, ...]

    @property
    def fitting(self) -> tuple[Prediction, ...]:
        """The candidates that fit in memory, fastest first."""
        return tuple(p for p in self.candidates if p.fits)

    @property
    def best(self) -> Prediction | None:
        """The fastest fitting candidate (None when nothing fits)."""
        fitting = self.fitting
        return fitting[0] if fitting else None

    @property
    def runner_up(self) -> Prediction | None:
        """The fastest fitting candidate with a different (tp, pp) than the best."""
        best = self.best
        if best is None:
            return None
        key = (best.config.tp, best.config.pp)
        return next((p for p in self.fitting if (p.config.tp, p.config.pp) != key), None)

    def explanation(self) -> str:
        """One paragraph: why the best beats the runner-up (see :func:`explain`)."""
        best = self.best
        if best is None:
            return "No configuration fits."
        return explain(best, self.runner_up, self.cluster)


class FitsNowhere(ValueError):
    """No configuration fits in memory; ``report`` holds every candidate tried."""

    def __init__(self, report: PlanReport) -> None:
        self.report = report
        smallest = min(report.candidates, key=lambda p: p.memory.total)
        c = report.cluster
        super().__init__(
            f"{report.model.name} fits nowhere on {c.nodes} × {c.name} ({c.world} GPUs, "
            f"{c.memory_bytes / GIB:.0f} GiB each): the smallest memory per GPU any "
            f"configuration needs is {smallest.memory.total / GIB:.1f} GiB "
            f"({smallest.config.label()})")


def _divisors(n: int) -> list[int]:
    """The divisors of ``n`` in increasing order, by trial division up to sqrt(n)."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return small + [n // d for d in reversed(small) if d * d != n]


def factorisations(model: ModelSpec, training: TrainingSpec, world: int,
                   space: SearchSpace = SearchSpace()) -> list[tuple[int, int, int]]:
    """Every (tp, pp, dp) with tp·pp·dp = ``world`` the model, batch and pins allow."""
    pinned = [getattr(space, n) for n in ("tp", "pp", "dp")]
    if all(v is not None for v in pinned) and pinned[0] * pinned[1] * pinned[2] != world:
        raise ValueError(f"tp × pp × dp = {pinned[0]} × {pinned[1]} × {pinned[2]} = "
                         f"{pinned[0] * pinned[1] * pinned[2]} GPUs, but the cluster has {world}")
    out = []
    for tp in _divisors(world):
        if model.heads % tp or model.kv_heads % tp or space.tp not in (None, tp):
            continue
        for pp in _divisors(world // tp):
            dp = world // (tp * pp)
            layers_ok = model.layers % pp == 0 or (space.allow_uneven and pp <= model.layers)
            if not layers_ok or training.global_batch % dp or space.pp not in (None, pp) \
                    or space.dp not in (None, dp):
                continue
            out.append((tp, pp, dp))
    if not out:
        pins = ", ".join(f"{n}={getattr(space, n)}" for n in ("tp", "pp", "dp")
                         if getattr(space, n) is not None)
        raise ValueError(
            f"no TP×PP×DP factorisation of {world} GPUs fits {model.name}: tp must divide "
            f"heads ({model.heads}) and kv_heads ({model.kv_heads}), pp must divide layers "
            f"({model.layers}), dp must divide global_batch ({training.global_batch})"
            + (f", with {pins}" if pins else ""))
    return out


def _schedule_options(model: ModelSpec, pp: int, space: SearchSpace) -> list[tuple[str, int]]:
    names = (space.schedule,) if space.schedule else (("1f1b",) if pp == 1 else
                                                      space.schedules)
    out = []
    for name in names:
        spec = SCHEDULES[name]
        if spec.takes_chunks:
            vs = [space.chunks] if space.chunks else range(2, space.max_chunks + 1)
        else:
            vs = [spec.default_chunks]
        for v in vs:
            stages = pp * v
            if model.layers % stages == 0 or (space.allow_uneven and stages <= model.layers):
                out.append((name, v))
    return out


def _price(step: StepModel, configs: list[Config]) -> list[Prediction]:
    """Price ``configs`` (lighter recomputation first) until one fits."""
    out: list[Prediction] = []
    for config in configs:
        try:
            memory = step.memory(config)
        except ValueError:  # the schedule generator rejects this (p, m, v)
            break
        out.append(step.predict(config, memory))
        if out[-1].fits:
            break  # heavier recomputation would only add work
    return out


def plan(model: ModelSpec, training: TrainingSpec, cluster: Cluster,
         space: SearchSpace = SearchSpace()) -> PlanReport:
    """Search, price and rank (module docstring); raises :class:`FitsNowhere` (a
    ValueError) when no candidate fits, and ValueError when none can be built."""
    step = StepModel(model, training, cluster)
    sizes = (training.microbatch_size,) if training.microbatch_size else space.microbatch_sizes
    recomputes = (training.recompute,) if training.recompute else RECOMPUTE
    found: list[Prediction] = []
    for tp, pp, dp in factorisations(model, training, cluster.world, space):
        per_replica = training.global_batch // dp
        mesh_sizes = [b for b in sizes if per_replica % b == 0]
        for name, v in _schedule_options(model, pp, space):
            for mbs in mesh_sizes:
                priced = _price(step, [Config(tp, pp, dp, name, mbs, v, r) for r in recomputes])
                found += priced
                if not priced or not priced[-1].fits:
                    break  # a larger micro-batch only needs more memory
            if found and not found[-1].fits and found[-1].memory.states \
                    + found[-1].memory.reserved > cluster.memory_bytes:
                break  # weights and optimizer state alone overflow: other schedules too
    if not found:
        raise ValueError(f"no candidate configuration could be built for {model.name} "
                         f"on {cluster.world} GPUs (check --schedule/--chunks/"
                         "--microbatch-size against the global batch)")
    found.sort(key=lambda p: (not p.fits, p.step_time if p.fits else p.memory.total))
    report = PlanReport(model, training, cluster, tuple(found))
    if report.best is None:
        raise FitsNowhere(report)
    return report


def _part(name: str, a: Prediction, b: Prediction, cluster: Cluster) -> str:
    ca, cb = a.config, b.config
    if name == "tp_comm_time":
        def where(tp: int) -> str:
            return "inside one node" if tp <= cluster.gpus_per_node else "across nodes"
        return (f"tensor-parallel all-reduces {a.tp_comm_time:.2f} s vs "
                f"{b.tp_comm_time:.2f} s (TP={ca.tp} {where(ca.tp)} vs TP={cb.tp} "
                f"{where(cb.tp)})")
    if name == "bubble_time":
        return (f"pipeline bubble {a.bubble_time:.2f} s ({a.bubble_fraction:.1%}) vs "
                f"{b.bubble_time:.2f} s ({b.bubble_fraction:.1%}) (pp={ca.pp}, "
                f"{a.num_microbatches} micro-batches, {ca.schedule} vs pp={cb.pp}, "
                f"{b.num_microbatches}, {cb.schedule})")
    if name == "compute_time":
        return (f"compute {a.compute_time:.2f} s vs {b.compute_time:.2f} s (recompute "
                f"{ca.recompute} vs {cb.recompute}, micro-batch {ca.microbatch_size} vs "
                f"{cb.microbatch_size})")
    if name == "dp_comm_time":
        return (f"data-parallel gradient all-reduce {a.dp_comm_time:.2f} s vs "
                f"{b.dp_comm_time:.2f} s (dp={ca.dp} vs dp={cb.dp})")
    return f"optimizer step {a.optimizer_time:.2f} s vs {b.optimizer_time:.2f} s"


def explain(best: Prediction, other: Prediction | None, cluster: Cluster) -> str:
    """Why ``best`` wins against ``other`` (the next-best with a different (tp, pp)),
    by the parts of the step time that differ most."""
    head = (f"{best.config.label()} is predicted at {best.step_time:.3g} s per step "
            f"({best.tflops_per_gpu:.0f} TFLOP/s per GPU, {best.memory.total / GIB:.1f} GiB "
            "per GPU).")
    if other is None:
        return head + " No fitting configuration has a different (tp, pp) to compare with."
    parts = ("compute_time", "tp_comm_time", "bubble_time", "dp_comm_time", "optimizer_time")
    gains = sorted(parts, key=lambda n: getattr(best, n) - getattr(other, n))
    wins = [n for n in gains if getattr(other, n) - getattr(best, n) > 0.005 * other.step_time]
    losses = [n for n in reversed(gains)
              if getattr(best, n) - getattr(other, n) > 0.005 * other.step_time]
    text = (f"{head} It beats the best configuration with a different (tp, pp), "
            f"{other.config.label()} ({other.step_time:.3g} s), by "
            f"{1 - best.step_time / other.step_time:.1%}")
    if wins:
        text += ", mainly through " + "; ".join(_part(n, best, other, cluster)
                                                for n in wins[:2])
    if losses:
        text += "; it pays for that with " + _part(losses[0], best, other, cluster)
    return text + "."
