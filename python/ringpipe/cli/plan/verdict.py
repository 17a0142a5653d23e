"""The verdict ``ringpipe plan`` opens with: the decision in one line, the runner-up of
the other kind and why it loses, the assumptions that decided it, and an honest tie.

* **Kind.** A configuration is *TP-heavy* (tp > pp), *PP-heavy* (pp > tp), *balanced*
  or *data-parallel* (:func:`ringpipe.cost.inference.search.kind`, the one definition,
  shared with ``plan --inference``); the verdict compares the winner with the best
  fitting configuration of the opposite kind (the TP-or-PP question), or of any other
  kind when the winner is balanced or data-parallel.
* **Tie.** When the two predicted step times differ by less than the planner's
  measured out-of-sample error
  (:data:`ringpipe.cost.published.accuracy.OUT_OF_SAMPLE_STEP_ERROR`, from ``python -m
  ringpipe.cost.validate``), the model cannot tell them apart: the verdict says so and
  names what to measure to break the tie, from the parts of the step time in which the
  two differ most (:data:`MEASURE`).
* **Assumptions** come from the prediction itself (``StepPrediction.assumptions``):
  sequence length, dtype, the per-GPU bandwidth each kind of message gets and which link
  TP, PP and DP cross.
"""

from __future__ import annotations

import textwrap
from typing import Any

from ringpipe.cost.hardware.cluster import Cluster
from ringpipe.cost.hardware.wording import GPU_WORDS, Wording, wording
from ringpipe.cost.inference.search import kind as mesh_kind
from ringpipe.cost.published.accuracy import OUT_OF_SAMPLE_STEP_ERROR, VALIDATE_COMMAND
from ringpipe.cost.training.explain import PARTS, main_reason
from ringpipe.cost.training.prediction import Config, StepPrediction
from ringpipe.cost.training.search import SearchReport

__all__ = ["MEASURE", "Verdict", "bubble_note", "kind", "other_kind", "verdict"]

#: Schedule names as people write them.
SCHEDULE_TITLES = {"gpipe": "GPipe", "1f1b": "1F1B", "interleaved-1f1b": "interleaved 1F1B",
                   "zb-h1": "ZB-H1", "zb-v": "ZB-V", "dualpipev": "DualPipeV"}

#: Part of the step time -> what to measure to pin it down (``{tp_where}``: the link TP
#: crosses). nccl-tests flags: -b/-e sizes, -f step factor, -g GPUs per process.
MEASURE = {
    "tp_comm_time": "the all-reduce bandwidth {tp_where} at the two TP sizes (nccl-tests "
                    "all_reduce_perf -b 1M -e 1G -f 2 -g <tp>)",
    "bubble_time": "the time of one layer's forward and backward on one GPU (ringpipe "
                   "calibrate --backend cupy) and the point-to-point bandwidth between "
                   "nodes (nccl-tests sendrecv_perf -b 1M -e 256M -f 2 -g 1 on two nodes)",
    "compute_time": "GEMM throughput at both shapes (ringpipe calibrate --backend cupy; "
                    "its GEMM curve replaces the roofline)",
    "dp_comm_time": "the inter-node all-reduce bandwidth (nccl-tests all_reduce_perf -b 1M "
                    "-e 1G -f 2 -g 8 across the nodes)",
    "optimizer_time": "HBM bandwidth (ringpipe calibrate --backend cupy)",
    "cp_comm_time": "the point-to-point bandwidth of the context-parallel ring (nccl-tests "
                    "sendrecv_perf -b 1M -e 1G -f 2 -g 2)",
    "ep_comm_time": "the all-to-all bandwidth of the expert-parallel group (nccl-tests "
                    "alltoall_perf -b 1M -e 1G -f 2 -g <ep>)",
}
#: The same for a cluster file measured on CPUs (processes, not GPUs): ringpipe measures
#: it all itself.
MEASURE_CPU = {
    "tp_comm_time": "the all-reduce bandwidth {tp_where} at the two TP sizes (ringpipe "
                    "calibrate)",
    "bubble_time": "the time of one layer's forward and backward in one process and the "
                   "point-to-point bandwidth between nodes (ringpipe calibrate)",
    "compute_time": "GEMM throughput at both shapes (ringpipe calibrate)",
    "dp_comm_time": "the all-reduce bandwidth across the nodes (ringpipe calibrate)",
    "optimizer_time": "memory bandwidth (ringpipe calibrate)",
    "cp_comm_time": "the point-to-point bandwidth between processes (ringpipe calibrate)",
    "ep_comm_time": "the all-to-all bandwidth (ringpipe calibrate)",
}


def wrap(text: str, width: int = 100) -> str:
    """``text`` wrapped at ``width``, continuation lines indented, a number never parted
    from its unit."""
    glued = text.replace(" GB/s", "\u00a0GB/s").replace(" s/step", "\u00a0s/step")
    return textwrap.fill(glued, width, subsequent_indent="  ",
                         break_on_hyphens=False).replace("\u00a0", " ")


def kind(p: StepPrediction) -> str:
    """The kind of ``p``'s mesh (module docstring)."""
    return mesh_kind(p.config.mesh)


#: The kind a TP-or-PP verdict compares with.
OPPOSITE = {"TP-heavy": "PP-heavy", "PP-heavy": "TP-heavy"}


def best_of_each_kind(report: SearchReport) -> dict[str, StepPrediction]:
    """The fastest fitting candidate of each kind present."""
    out: dict[str, StepPrediction] = {}
    for p in report.fitting:
        out.setdefault(kind(p), p)
    return out


def other_kind(report: SearchReport) -> StepPrediction | None:
    """The best fitting candidate of the winner's opposite kind, else of any other kind."""
    if report.best is None:
        return None
    kinds, mine = best_of_each_kind(report), kind(report.best)
    opposite = kinds.get(OPPOSITE.get(mine, ""))
    return opposite or next((p for k, p in kinds.items() if k != mine), None)


def _where(link: object) -> str:
    return "across nodes" if link == "inter-node" else "inside each node"


def _axes(c: Config) -> tuple[tuple[str, int], ...]:
    """The mesh's degrees in the order people write them (CP and EP when the mesh has
    them)."""
    return (("tp", c.tp), ("cp", c.cp), ("pp", c.pp), ("dp", c.dp), ("ep", c.ep))


def layout(p: StepPrediction, words: Wording = GPU_WORDS) -> str:
    """``TP=4 inside each node, PP=8 across nodes (ZB-V, 2 stages per rank)``; an
    uneven split adds its layers per stage (``1F1B, balanced split 18/21/21/20 layers``)."""
    c, a = p.config, p.assumptions
    axes = [f"{axis.upper()}={n} {_where(a.get(f'{axis}_link'))}"
            for axis, n in _axes(c) if n > 1]
    schedule = SCHEDULE_TITLES.get(c.schedule, c.schedule)
    if c.chunks > 1:
        schedule += f", {c.chunks} stages per rank"
    if c.split_name != "even":  # the layers per stage, when few enough to read
        counts = p.layers_per_stage
        schedule += f", {c.split_name} split" + (
            f" {'/'.join(map(str, counts))} layers" if 1 < len(counts) <= 8 else "")
    text = ", ".join(axes) if axes else f"one {words.rank}"
    return text + (f" ({schedule})" if c.pp > 1 else "")


def assumptions_line(p: StepPrediction, words: Wording = GPU_WORDS) -> str:
    """The assumptions that decided ``p``, in one sentence (``words``: GPUs or
    processes)."""
    a: dict[str, Any] = dict(p.assumptions)
    c = p.config
    for axis in ("cp", "ep"):  # their messages get the link's per-GPU bandwidth
        a.setdefault(f"{axis}_gbs", a["inter_node_gbs" if a.get(f"{axis}_link") ==
                                      "inter-node" else "intra_node_gbs"])
    links = [f"{axis.upper()} crosses {a[f'{axis}_link']} links at {a[f'{axis}_gbs']:.3g} GB/s"
             for axis, n in _axes(c) if n > 1 and f"{axis}_link" in a]
    return (f"Assumed: sequence {a['seq']}, {a['dtype']}, global batch {a['global_batch']}; "
            f"per {words.rank}, each way, {a['intra_node_gbs']:g} GB/s inside a node and "
            f"{a['inter_node_gbs']:g} GB/s across nodes ({a['gpus_per_node']} "
            f"{words.ranks} per node)"
            + ("; " + ", ".join(links) if links else "") + ".")


class Verdict:
    """The verdict on one search (module docstring); ``lines()`` prints it."""

    def __init__(self, report: SearchReport, tolerance: float = OUT_OF_SAMPLE_STEP_ERROR
                 ) -> None:
        self.report, self.tolerance = report, tolerance
        self.best, self.other = report.best, other_kind(report)
        self.words = wording(report.cluster)

    @property
    def margin(self) -> float | None:
        """How much faster the winner is predicted than the other kind's best, as a
        fraction of the latter's step time (as the explanation counts it)."""
        if self.best is None or self.other is None:
            return None
        return 1 - self.best.step_time / self.other.step_time

    @property
    def tie(self) -> bool:
        """Whether the margin is inside the out-of-sample error."""
        return self.margin is not None and self.margin < self.tolerance

    def tie_breakers(self) -> list[str]:
        """What to measure: the two parts in which best and other differ most."""
        assert self.best is not None and self.other is not None
        b, o = self.best, self.other
        order = sorted(PARTS, key=lambda n: -abs(getattr(b, n) - getattr(o, n)))
        tp_where = ("across nodes" if "inter-node" in (b.assumptions.get("tp_link"),
                                                        o.assumptions.get("tp_link"))
                    else "inside a node")
        measure = MEASURE if self.words == GPU_WORDS else MEASURE_CPU
        return [measure[n].format(tp_where=tp_where) for n in order[:2]
                if abs(getattr(b, n) - getattr(o, n)) > 0]

    def lines(self) -> list[str]:
        """The verdict as printed (three or four lines)."""
        best, cluster = self.best, self.report.cluster
        if best is None:
            return ["Verdict: no configuration fits."]
        words = self.words
        head = (f"Verdict: {layout(best, words)}; {best.step_time:.3g} s/step, "
                f"{best.mfu:.1%} MFU "
                f"(micro-batch {best.config.microbatch_size}, recomputation "
                f"{best.config.recompute}).")
        out = [head]
        other = self.other
        if other is None and self.report.pinned:
            out.append("tp/pp/dp are pinned: the best configuration without the pins is "
                       "compared below.")
        elif other is None:
            out.append(f"No fitting configuration of another kind than {kind(best)} to "
                       "compare with.")
        else:
            out.append(f"Runner-up of another kind ({kind(other)}): {layout(other, words)}; "
                       f"{other.step_time:.3g} s/step, the winner is {self.margin:.1%} "
                       f"faster, mainly through {_reason(other, best, cluster)}.")
        out.append(assumptions_line(best, words))
        if self.tie:
            steps = "; ".join(f"({i}) {m}" for i, m in enumerate(self.tie_breakers(), 1))
            out.append(f"A tie: {self.margin:.1%} is less than the planner's "
                       f"{self.tolerance:.1%} out-of-sample step-time error "
                       f"({VALIDATE_COMMAND}). To break it, measure {steps}; then plan "
                       "again with those numbers in a --cluster-file, or run both for a "
                       "few steps (--emit with --tp/--pp pins prints each one's flags).")
        return out

    def text(self, width: int = 100) -> str:
        """:meth:`lines` wrapped at ``width`` columns, continuation lines indented."""
        return "\n".join(wrap(line, width) for line in self.lines())

    def to_dict(self) -> dict[str, Any]:
        """The verdict for ``--json``."""
        return {"summary": self.lines()[0], "kind": None if self.best is None
                else kind(self.best),
                "runner_up_other_kind": None if self.other is None else self.other.to_dict(),
                "margin": self.margin, "tie": self.tie, "tie_tolerance": self.tolerance,
                "tie_breakers": self.tie_breakers() if self.tie else [],
                "text": self.lines()}


def _reason(slow: StepPrediction, fast: StepPrediction, cluster: Cluster) -> str:
    return main_reason(slow, fast, cluster)


def verdict(report: SearchReport) -> Verdict:
    """The :class:`Verdict` on ``report``."""
    return Verdict(report)


def bubble_note(p: StepPrediction | None, vocab: int) -> str | None:
    """Why ``p``'s bubble is what it is: the part uneven work per pipeline rank causes
    (``StepPrediction.imbalance_fraction``; the schedule formulas such as (p−1)/(m+p−1)
    assume equal stages and count only the rest, fill and drain, which shrinks as
    micro-batches grow) and what the busiest rank holds (None without a pipeline)."""
    if p is None or p.config.pp == 1 or not p.rank_busy:
        return None
    from ringpipe.schedules.registry import generate, schedule_spec

    c = p.config
    placement = generate(c.schedule, c.pp, c.pp, c.chunks if schedule_spec(c.schedule)
                         .takes_chunks else None).placement
    busiest = max(range(c.pp), key=lambda r: p.rank_busy[r])
    mine = [s for s, r in enumerate(placement) if r == busiest]
    held = [what for what, stage in (("the embedding", 0),
                                     (f"the logit layer (vocabulary {vocab})" if vocab else
                                      "the output layer", len(placement) - 1)) if stage in mine]
    extra = max(p.rank_busy) / (sum(p.rank_busy) / len(p.rank_busy)) - 1
    why = (f"pipeline rank {busiest} holds {' and '.join(held)} and" if held
           else f"pipeline rank {busiest}")
    return wrap(
        f"bubble: the winner's {p.bubble_fraction:.1%} is {p.imbalance_fraction:.1%} "
            f"uneven work ({why} works {extra:.1%} more than the mean rank, so the others "
            f"wait) plus {max(0.0, p.bubble_fraction - p.imbalance_fraction):.1%} pipeline "
            f"fill and drain ({p.num_microbatches} micro-batches), the part the "
            "(p-1)/(m+p-1)-style formulas count.")
