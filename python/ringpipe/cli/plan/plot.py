"""``ringpipe plan --plot``: where each candidate's step time goes, as stacked bars, and
the check that a plot path can be written (shared with ``plan --inference --plot``),
done before any work.

The bars are the winner and the best TP-heavy and PP-heavy candidates
(:func:`ringpipe.cost.inference.search.kind`: more tensor-parallel ranks than pipeline
ranks, or the reverse), each split into the five parts of the predicted step
(``StepPrediction.parts``): compute, TP communication, pipeline bubble, exposed DP
communication and the optimizer step. The file's suffix picks the format (``.png``,
``.svg``, ``.pdf``; no suffix: PNG, written to exactly the path given).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ringpipe.cost.inference.search import kind
from ringpipe.cost.training.prediction import StepPrediction
from ringpipe.cost.training.search import SearchReport

__all__ = ["PLOT_FORMATS", "check_plot_path", "plot_format", "save_figure", "write_plot"]

#: File suffix -> matplotlib format; a path without a suffix is written as PNG.
PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}

#: The bars' segments: (StepPrediction.parts key, legend label, colour).
SEGMENTS = (("compute", "compute", "tab:blue"), ("tp_comm", "TP communication", "tab:orange"),
            ("bubble", "PP bubble", "tab:red"), ("dp_comm_exposed", "DP exposed", "tab:green"),
            ("optimizer", "optimizer", "tab:gray"))


def plot_format(path: str) -> str:
    """The format the suffix of ``path`` names (module docstring); ValueError otherwise."""
    suffix = Path(path).suffix.lower()
    if not suffix:
        return "png"
    if suffix not in PLOT_FORMATS:
        raise ValueError(f"--plot: cannot tell the format of {path}: name it .png, .svg or "
                         ".pdf")
    return PLOT_FORMATS[suffix]


def _pyplot() -> Any:  # noqa: ANN401 - matplotlib.pyplot
    try:
        import matplotlib  # noqa: PLC0415 - optional extra, imported only when plotting
    except ImportError as exc:
        raise ImportError(f"--plot needs matplotlib: pip install 'ringpipe[plot]' ({exc})"
                          ) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def save_figure(fig: Any, path: str) -> None:  # noqa: ANN401 - a matplotlib Figure
    """Write ``fig`` to exactly ``path`` in the format its suffix names."""
    fig.savefig(path, dpi=120, format=plot_format(path), bbox_inches="tight")


def shown(report: SearchReport) -> list[tuple[str, StepPrediction]]:
    """The bars: the winner, then the best TP-heavy and PP-heavy candidates (each once);
    when nothing fits, the three closest by memory."""
    if report.best is None:
        closest = sorted(report.candidates, key=lambda p: p.memory.total)[:3]
        return [("does not fit", p) for p in closest]
    out = [(f"winner ({kind(report.best.config.mesh)})", report.best)]
    for wanted in ("TP-heavy", "PP-heavy"):
        p = next((q for q in report.fitting if kind(q.config.mesh) == wanted), None)
        if p is not None and all(p is not q for _, q in out):
            out.append((f"best {wanted}", p))
    return out


def write_plot(report: SearchReport, path: str, top: int = 3) -> None:
    """Stacked horizontal bars of the predicted step time (module docstring). ``top`` is
    accepted for the command line's sake; the bars are always the ones :func:`shown`
    picks."""
    plt = _pyplot()
    bars = shown(report)
    fig, ax = plt.subplots(figsize=(9, 0.7 * len(bars) + 1.8))
    for row, (_, p) in enumerate(bars):
        left = 0.0
        for key, label, colour in SEGMENTS:
            width = p.parts()[key]
            ax.barh(row, width, left=left, color=colour, label=label if row == 0 else None)
            left += width
        ax.text(left, row, f" {p.step_time:.3g} s, MFU {p.mfu:.1%}", va="center", fontsize=8)
    ax.set_yticks(range(len(bars)), [f"{role}\n{p.config.label()}" for role, p in bars],
                  fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("predicted seconds per step")
    ax.set_xlim(0, max(p.step_time for _, p in bars) * 1.25)
    c = report.cluster
    ax.set_title(f"{report.model.name} on {c.nodes} × {c.name}, global batch "
                 f"{report.training.global_batch}: where the step time goes")
    ax.legend(fontsize=7, ncol=5, loc="lower center", bbox_to_anchor=(0.5, -0.45 - 0.05 *
                                                                       (3 - len(bars))))
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def check_plot_path(path: str) -> None:
    """ValueError unless ``path`` names a file that can be written in a known format
    (checked up front)."""
    if not path:  # Path("") is ".", a directory, and `if args.plot:` skipped it silently
        raise ValueError("--plot needs a file name, got ''")
    target = Path(path)
    if target.is_dir() or path.endswith(("/", os.sep)):
        raise ValueError(f"--plot: {path} is a directory; give a file name, e.g. "
                         f"{target / 'plan.png'}")
    plot_format(path)
    folder = target.parent
    if not folder.is_dir():
        raise ValueError(f"--plot: cannot write {path}: no directory {folder}")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"--plot: cannot write {path}: {folder} is not writeable")
