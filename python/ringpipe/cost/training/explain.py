"""Why one configuration beats another, in words: the parts of the step time that differ
most, the FLOPs both ways (model and hardware), and the memory breakdown; in the
cluster's words (GPUs and TFLOP/s, or processes and GFLOP/s for a CPU cluster file:
:mod:`ringpipe.cost.hardware.wording`)."""

from __future__ import annotations

from ringpipe.cost.hardware.cluster import Cluster
from ringpipe.cost.hardware.wording import GPU_WORDS, wording
from ringpipe.cost.training.prediction import StepPrediction

PARTS = ("compute_time", "tp_comm_time", "bubble_time", "dp_comm_time", "optimizer_time",
         "cp_comm_time", "ep_comm_time")


def _part(name: str, a: StepPrediction, b: StepPrediction, cluster: Cluster) -> str:
    ca, cb = a.config, b.config
    if name == "tp_comm_time":
        def where(tp: int) -> str:
            return "inside one node" if tp <= cluster.gpus_per_node else "across nodes"
        return (f"tensor-parallel communication {a.tp_comm_time:.2f} s vs "
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
                f"{cb.microbatch_size}, GEMMs split {ca.tp} vs {cb.tp} ways)")
    if name == "cp_comm_time":
        return (f"exposed ring-attention exchange {a.cp_comm_time:.2f} s vs "
                f"{b.cp_comm_time:.2f} s (cp={ca.cp} vs cp={cb.cp})")
    if name == "ep_comm_time":
        return (f"MoE dispatch/combine all-to-alls {a.ep_comm_time:.2f} s vs "
                f"{b.ep_comm_time:.2f} s (ep={ca.ep} vs ep={cb.ep})")
    if name == "dp_comm_time":
        return (f"exposed data-parallel communication {a.dp_comm_time:.2f} s vs "
                f"{b.dp_comm_time:.2f} s (dp={ca.dp} vs dp={cb.dp})")
    return f"optimizer step {a.optimizer_time:.2f} s vs {b.optimizer_time:.2f} s"


def _rate(tflops: float, cluster: Cluster | None) -> str:
    """A FLOP rate in the cluster's unit (TFLOP/s, or GFLOP/s on CPUs: :mod:`wording`)."""
    words = GPU_WORDS if cluster is None else wording(cluster)
    value = words.flops(tflops)
    return f"{value:.0f}" if value >= 10 or value == 0 else f"{value:.2g}"


def headline(p: StepPrediction, cluster: Cluster | None = None) -> str:
    """One sentence: step time, model and hardware FLOP/s, MFU, memory breakdown, in
    ``cluster``'s words (GPUs and TFLOP/s, or processes and GFLOP/s)."""
    w = GPU_WORDS if cluster is None else wording(cluster)
    return (f"{p.config.label()} is predicted at {p.step_time:.3g} s per step: "
            f"{_rate(p.model_tflops_per_gpu, cluster)} model {w.flops_unit} per {w.rank} "
            f"(MFU {p.mfu:.1%}; hardware FLOPs with recomputation "
            f"{_rate(p.hardware_tflops_per_gpu, cluster)} {w.flops_unit}, "
            f"HFU {p.hfu:.1%}). Memory per {w.rank}: {p.memory.describe()}, leaving "
            f"{(p.memory_capacity - p.memory.total) / 2**30:.1f} GiB "
            f"(headroom {p.headroom / 2**30:g} GiB).")


def explain(best: StepPrediction, other: StepPrediction | None, cluster: Cluster,
            pinned: bool = False) -> str:
    """Why ``best`` wins against ``other`` (the next-best with a different (tp, pp)),
    by the parts of the step time that differ most. ``pinned``: tp/pp/dp were pinned
    (and ``other`` is None because no configuration without the pins fits either)."""
    head = headline(best, cluster)
    if other is None and pinned:
        return head + " No fitting configuration without the pins was found to compare with."
    if other is None:
        return head + " No fitting configuration has a different (tp, pp) to compare with."
    gains = sorted(PARTS, key=lambda n: getattr(best, n) - getattr(other, n))
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


def main_reason(slow: StepPrediction, fast: StepPrediction, cluster: Cluster) -> str:
    """The part of the step time that costs ``slow`` the most against ``fast``."""
    name = max(PARTS, key=lambda n: getattr(slow, n) - getattr(fast, n))
    return _part(name, slow, fast, cluster)


def explain_pinned(pinned: StepPrediction, best: StepPrediction, cluster: Cluster) -> str:
    """The pinned choice against the best unpinned one: predicted slowdown, main reason."""
    head = headline(pinned, cluster)
    words = wording(cluster)
    if best.step_time >= pinned.step_time:
        return (head + " It is also the best configuration without the pins (the best "
                f"unpinned, {best.config.label()}, is predicted at {best.step_time:.3g} s).")
    slowdown = pinned.step_time / best.step_time - 1
    return (f"{head} The best configuration without the pins is {best.config.label()} at "
            f"{best.step_time:.3g} s ({_rate(best.model_tflops_per_gpu, cluster)} model "
            f"{words.flops_unit} per {words.rank}): the pinned choice is predicted "
            f"{slowdown:.1%} slower, mainly through "
            f"{main_reason(pinned, best, cluster)}.")
