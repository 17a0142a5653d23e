"""The planner's search: enumerate TP × CP × PP × DP (× EP) configurations, drop what does
not fit, rank.

Search space (each dimension can be pinned):

* context parallelism cp, and for MoE models the expert grid (ep, etp)
  (:mod:`ringpipe.cost.training.parallel.space`);
* every factorisation tp · pp · dp of the cluster's GPUs / cp where tp divides the heads
  (and KV heads), dp divides the global batch and pp·v stages can hold the layers;
* every built-in schedule (:data:`ringpipe.schedules.SCHEDULES`: GPipe, 1F1B,
  interleaved 1F1B with v = 2 .. ``max_chunks`` chunks per rank, ZB-H1, ZB-V,
  DualPipeV); with pp = 1 there is no pipeline and only 1F1B (plain gradient
  accumulation) is kept; ``schedule="auto"`` prices the schedule synthesised for each
  configuration's own stage costs (:func:`ringpipe.schedules.synthesize`);
* every split of the layers over the pp·v stages (``split``, or an explicit
  ``layout``): **balanced** (:mod:`ringpipe.plan.balance`: the embedding, the head and
  the loss weighed in, under the memory cap; the first and last stages may hold no
  layer) and **even** (when pp·v divides the layers, or with ``allow_uneven``, where
  :func:`ringpipe.plan.layout.split_layers` gives the first stages one layer more); each
  is timed through the schedule simulator with its own per-stage costs, so no closed
  form decides between schedules or splits;
* micro-batch sizes 1, 2, 4, 8, 16 that divide the per-replica batch;
* recomputation none, then selective, then full: a heavier mode only does more work,
  so it is priced only when the lighter one does not fit.

A configuration fits when its predicted memory per GPU plus ``headroom`` is at most the
GPU's memory. Each candidate is priced by :class:`ringpipe.cost.training.step_time.StepModel`
(one instance per search, so schedules, simulator orders and collective profiles are
built once). Fitting candidates are ranked by predicted step time; the ones that do not
fit follow, smallest memory first. When tp, pp or dp is pinned, the same search without
those pins gives the best unpinned configuration to compare with
(:attr:`SearchReport.unpinned_best`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ringpipe.cost.hardware.cluster import GIB, Cluster
from ringpipe.cost.hardware.wording import wording
from ringpipe.cost.training.explain import explain, explain_pinned
from ringpipe.cost.training.memory import DEFAULT_HEADROOM_GIB
from ringpipe.cost.training.parallel.explain import parallelism_note
from ringpipe.cost.training.parallel.space import meshes
from ringpipe.cost.training.pipeline.options import schedule_options
from ringpipe.cost.training.pipeline.simulator import PipelineSimulator, PricingLimit
from ringpipe.cost.training.prediction import Config, StepPrediction
from ringpipe.cost.training.spec import RECOMPUTE, TrainingSpec
from ringpipe.cost.training.step_time import StepModel
from ringpipe.limits import DEFAULT_LIMITS, Limits
from ringpipe.model.config import ModelConfig
from ringpipe.plan.layout import SPLITS, PipelineLayout
from ringpipe.schedules import SCHEDULES, resolve_chunks, schedule_spec
from ringpipe.validation import check_int, check_real

#: Searched by default: every built-in schedule, 1F1B first (so that a mesh whose
#: weights alone overflow is represented by its lowest-memory schedule).
DEFAULT_SCHEDULES = ("1f1b",) + tuple(n for n in SCHEDULES if n != "1f1b")
DEFAULT_MICROBATCH_SIZES = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class SearchSpace:
    """Pins (``None``: search) and the ranges searched. Micro-batch size and
    recomputation are pinned through :class:`TrainingSpec`."""

    tp: int | None = None
    pp: int | None = None
    dp: int | None = None
    schedule: str | None = None
    cp: int | None = None
    ep: int | None = None
    etp: int | None = None
    chunks: int | None = None
    schedules: tuple[str, ...] = DEFAULT_SCHEDULES
    microbatch_sizes: tuple[int, ...] = DEFAULT_MICROBATCH_SIZES
    max_chunks: int = 8
    allow_uneven: bool = False
    split: str | None = None
    layout: PipelineLayout | None = None

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "dp", "chunks", "cp", "ep", "etp"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name))
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {self.split!r}")
        if self.layout is not None and not isinstance(self.layout, PipelineLayout):
            raise TypeError(f"layout must be a PipelineLayout, got {type(self.layout).__name__}")
        check_int("max_chunks", self.max_chunks)
        for name in ((self.schedule,) if self.schedule else ()) + self.schedules:
            schedule_spec(name, "SearchSpace: schedule")  # ValueError naming the known ones
        if self.schedule and self.chunks is not None:
            resolve_chunks(self.schedule, self.chunks)  # e.g. 1f1b with chunks=2

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits searched: the pinned one, else balanced and even."""
        return (self.split,) if self.split else ("even", "balanced")

    @property
    def pinned(self) -> bool:
        """Whether any of tp, pp, dp, cp, ep is pinned."""
        return any(getattr(self, n) is not None for n in ("tp", "pp", "dp", "cp", "ep"))


@dataclass(frozen=True)
class SearchReport:
    """The ranked candidates (best first), what they were planned for and, with pins,
    the best unpinned candidate."""

    model: ModelConfig
    training: TrainingSpec
    cluster: Cluster
    candidates: tuple[StepPrediction, ...]
    headroom: float = 0.0
    unpinned_best: StepPrediction | None = None
    pinned: bool = False

    @property
    def fitting(self) -> tuple[StepPrediction, ...]:
        """The candidates that fit in memory, fastest first."""
        return tuple(p for p in self.candidates if p.fits)

    @property
    def best(self) -> StepPrediction | None:
        """The fastest fitting candidate (None when nothing fits)."""
        fitting = self.fitting
        return fitting[0] if fitting else None

    @property
    def runner_up(self) -> StepPrediction | None:
        """The fastest fitting candidate with a different (tp, pp) than the best."""
        best = self.best
        if best is None:
            return None
        key = (best.config.tp, best.config.pp)
        return next((p for p in self.fitting if (p.config.tp, p.config.pp) != key), None)

    def explanation(self) -> str:
        """Why the best wins: against the best unpinned configuration when tp/pp/dp are
        pinned, else against the runner-up; with the memory breakdown."""
        best = self.best
        if best is None:
            return "No configuration fits."
        if self.unpinned_best is not None:
            text = explain_pinned(best, self.unpinned_best, self.cluster)
        else:
            text = explain(best, self.runner_up, self.cluster, self.pinned)
        note = parallelism_note(best, self.candidates, self.cluster, self.model.is_moe)
        return f"{text} {note}" if note else text


class FitsNowhere(ValueError):
    """No configuration fits in memory; ``report`` holds every candidate tried."""

    def __init__(self, report: SearchReport) -> None:
        self.report = report
        smallest = min(report.candidates, key=lambda p: p.memory.total)
        c = report.cluster
        super().__init__(
            f"{report.model.name} fits nowhere on {c.nodes} × {c.name} "
            f"({wording(c).count(c.world)}, "
            f"{c.memory_bytes / GIB:.0f} GiB each, {report.headroom / GIB:g} GiB headroom): "
            f"the smallest memory per {wording(c).rank} any configuration needs is "
            f"{smallest.memory.total / GIB:.1f} GiB ({smallest.config.label()})")


def _recomputes(training: TrainingSpec) -> tuple[str, ...]:
    return (training.recompute,) if training.recompute else RECOMPUTE


def _price(step: StepModel, configs: list[Config],
           even_searched: bool) -> tuple[list[StepPrediction], bool]:
    """Price ``configs`` (lighter recomputation first) until one fits; and whether they
    were skipped as balanced splits equal to the even one (``even_searched``: that one
    is priced too)."""
    out: list[StepPrediction] = []
    for config in configs:
        try:
            layout = step.layout(config)
        except PricingLimit:  # too large to price: refused, not dropped silently
            raise
        except ValueError:  # the schedule generator rejects this (p, m, v)
            break
        stages, layers = len(layout.placement), step.model.layers
        if even_searched and config.split == "balanced" and config.layout is None and \
                layers >= stages and layout.stages == PipelineLayout.even(layers, stages):
            return out, True  # the same layout is priced as "even"
        out.append(step.predict(config, step.memory(config, layout)))
        if out[-1].fits:
            break  # heavier recomputation would only add work
    return out, False


def _search(step: StepModel, space: SearchSpace) -> list[StepPrediction]:
    model, training, cluster = step.model, step.training, step.cluster
    sizes = (training.microbatch_size,) if training.microbatch_size else space.microbatch_sizes
    found: list[StepPrediction] = []
    for mesh in meshes(model, training, cluster.world, space):
        per_replica, pp = training.global_batch // mesh.dp, mesh.pp
        options = schedule_options(model, pp, space)
        for name, v, split in options:
            even = (name, v, "even") in options and split == "balanced"
            for mbs in [b for b in sizes if per_replica % b == 0]:
                priced, twin = _price(step, [Config(mesh, name, mbs, v, r, split, space.layout)
                                             for r in _recomputes(training)], even)
                if twin:
                    continue
                found += priced
                if not priced or not priced[-1].fits:
                    break  # a larger micro-batch only needs more memory
            last = found[-1] if found else None
            if last is not None and not last.fits and last.config.split_name == "even" and \
                    last.memory.states + last.memory.reserved + step.headroom \
                    > cluster.memory_bytes:
                break  # an even split's weights and optimizer state alone overflow: so do
                # the other schedules' (a balanced split may move layers off the fullest rank)
    found.sort(key=lambda p: (not p.fits, p.step_time if p.fits else p.memory.total))
    return found


def search(model: ModelConfig, training: TrainingSpec, cluster: Cluster,
           space: SearchSpace = SearchSpace(), headroom_gib: float = DEFAULT_HEADROOM_GIB,
           compare_unpinned: bool = True, placement: str = "ringpipe",
           limits: Limits = DEFAULT_LIMITS) -> SearchReport:
    """Search, price and rank (module docstring); raises :class:`FitsNowhere` (a
    ValueError) when no candidate fits, and ValueError when none can be built.
    ``compare_unpinned``: with tp/pp/dp pins, also search without them; ``placement``:
    which GPU each mesh rank runs on (:mod:`ringpipe.cost.training.parallel.groups`);
    ``limits``: ``max_schedule_cells`` bounds each pipeline simulation
    (:class:`PricingLimit`)."""
    check_real("headroom (GiB)", headroom_gib, 0.0)
    step = StepModel(model, training, cluster, headroom=headroom_gib * GIB,
                     sim=PipelineSimulator(limits), placement=placement)
    found = _search(step, space)
    if not space.allow_uneven and not any(p.fits for p in found):
        uneven = replace(space, allow_uneven=True)
        retry = _search(step, uneven)
        if any(p.fits for p in retry):
            found, space = retry, uneven
    if not found and space.layout is not None:
        raise ValueError(f"layout {space.layout.format()!r} has {space.layout.num_stages} "
                         f"stages and {space.layout.num_layers} layers: no searched pp × v "
                         f"has that many stages for {model.name}'s {model.layers} layers")
    if not found:
        raise ValueError(f"no candidate configuration could be built for {model.name} "
                         f"on {cluster.world} GPUs (check --schedule/--chunks/"
                         "--microbatch-size against the global batch)")
    unpinned = None
    if space.pinned and compare_unpinned:
        # a pinned pp that does not divide the layers is an uneven split: compare with
        # the unpinned search on the same terms
        uneven = space.allow_uneven or (space.pp is not None and model.layers % space.pp != 0)
        free = _search(step, replace(space, tp=None, pp=None, dp=None, cp=None, ep=None,
                                     allow_uneven=uneven))
        unpinned = next((p for p in free if p.fits), None)
    report = SearchReport(model, training, cluster, tuple(found), step.headroom, unpinned,
                        space.pinned)
    if report.best is None:
        raise FitsNowhere(report)
    return report
