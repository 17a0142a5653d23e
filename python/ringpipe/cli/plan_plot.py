"""``ringpipe plan --plot``: the training search's bar chart, and the check that a plot
path can be written (shared with ``plan --inference --plot``), done before any work."""

from __future__ import annotations

import os
from pathlib import Path

from ringpipe.cost import SearchReport
from ringpipe.cost.training.prediction import StepPrediction

__all__ = ["check_plot_path", "write_plot"]


def write_plot(report: SearchReport, path: str, top: int) -> None:
    """Horizontal bars of predicted model TFLOP/s per GPU (model FLOPs: useful work, no
    recomputation, so the bars rank as the step times do, as the table's model column):
    the best configuration of each (tp, pp, dp), fitting ones coloured, non-fitting
    grey."""
    try:
        import matplotlib  # noqa: PLC0415 - optional extra, imported only when plotting
    except ImportError as exc:
        raise ImportError(f"--plot needs matplotlib: pip install 'ringpipe[plot]' ({exc})"
                          ) from exc

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    best: dict[tuple[int, int, int], StepPrediction] = {}
    for p in report.candidates:
        key = (p.config.tp, p.config.pp, p.config.dp)
        best.setdefault(key, p)
    shown = sorted(best.values(), key=lambda p: (not p.fits, p.step_time))[:max(top, 1)]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(shown) + 1.5))
    labels = [p.config.label() for p in shown]
    ax.barh(range(len(shown)), [p.model_tflops_per_gpu for p in shown],
            color=["tab:blue" if p.fits else "lightgrey" for p in shown])
    ax.set_yticks(range(len(shown)), labels, fontsize=8)
    ax.invert_yaxis()
    c = report.cluster
    ax.set_xlabel("predicted model TFLOP/s per GPU, recomputation not counted\n"
                  "(grey: does not fit)")
    ax.set_title(f"{report.model.name} on {c.nodes} × {c.name}, global batch "
                 f"{report.training.global_batch}")
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png", bbox_inches="tight")  # exactly `path`
    plt.close(fig)


def check_plot_path(path: str) -> None:
    """ValueError unless ``path`` names a file that can be written (checked up front)."""
    if not path:  # Path("") is ".", a directory, and `if args.plot:` skipped it silently
        raise ValueError("--plot needs a file name, got ''")
    target = Path(path)
    if target.is_dir() or path.endswith(("/", os.sep)):
        raise ValueError(f"--plot: {path} is a directory; give a file name, e.g. "
                         f"{target / 'plan.png'}")
    folder = target.parent
    if not folder.is_dir():
        raise ValueError(f"--plot: cannot write {path}: no directory {folder}")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"--plot: cannot write {path}: {folder} is not writeable")
