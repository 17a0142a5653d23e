"""SVG timeline of a simulated schedule, written as plain text (no browser, no library).

One row per rank, one box per compute action at its simulated start and duration,
one fill colour per action kind, the micro-batch number inside each box (with the
stage as ``s<stage>:`` when ranks hold several stages), and a legend.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from .actions import ActionKind
from .simulate import SimulationResult

KIND_COLOURS = {
    ActionKind.FORWARD: "#4c78a8",
    ActionKind.FULL_BACKWARD: "#59a14f",
    ActionKind.BACKWARD_INPUT: "#f28e2b",
    ActionKind.BACKWARD_WEIGHT: "#b07aa1",
}
_KIND_NAMES = {
    ActionKind.FORWARD: "F forward",
    ActionKind.FULL_BACKWARD: "B backward",
    ActionKind.BACKWARD_INPUT: "I backward (input)",
    ActionKind.BACKWARD_WEIGHT: "W backward (weights)",
}


def render_svg(
    result: SimulationResult, *, unit_width: float = 24.0, row_height: float = 26.0
) -> str:
    """The SVG document (a string) for ``result``; ``unit_width`` px per time unit."""
    if not unit_width > 0 or not row_height > 0:
        raise ValueError("unit_width and row_height: must be > 0")
    schedule = result.schedule
    margin, label_width = 8.0, 64.0
    makespan = float(result.makespan)
    width = label_width + makespan * unit_width + 2 * margin
    legend_y = margin + schedule.num_ranks * row_height + 12
    height = legend_y + 24
    show_stage = schedule.chunks_per_rank > 1
    title = (
        f"{schedule.name}: p={schedule.num_ranks} m={schedule.num_microbatches} "
        f"v={schedule.chunks_per_rank}, makespan {makespan:g}, "
        f"bubble {float(result.bubble_fraction):.1%}"
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.1f}" height="{height:.1f}" '
        f'font-family="monospace" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width:.1f}" height="{height:.1f}" fill="white"/>',
    ]
    for rank, line in enumerate(result.timelines):
        y = margin + rank * row_height
        out.append(f'<text x="{margin:.1f}" y="{y + row_height / 2 + 4:.1f}">rank {rank}</text>')
        for timed in line:
            kind = timed.action.kind
            if kind not in KIND_COLOURS or timed.end <= timed.start:
                continue
            x = margin + label_width + float(timed.start) * unit_width
            w = float(timed.end - timed.start) * unit_width
            text = f"{timed.action.microbatch}"
            if show_stage:
                text = f"s{timed.action.stage}:{text}"
            out.append(
                f"<g><title>{timed.action} [{float(timed.start):g}, {float(timed.end):g})</title>"
                f'<rect x="{x:.2f}" y="{y + 2:.1f}" width="{w:.2f}" height="{row_height - 4:.1f}" '
                f'fill="{KIND_COLOURS[kind]}" stroke="black" stroke-width="0.5"/>'
                f'<text x="{x + w / 2:.2f}" y="{y + row_height / 2 + 4:.1f}" fill="white" '
                f'text-anchor="middle">{text}</text></g>'
            )
    x = margin
    for kind, colour in KIND_COLOURS.items():
        if kind not in schedule.kinds:
            continue
        out.append(
            f'<rect x="{x:.1f}" y="{legend_y:.1f}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{x + 16:.1f}" y="{legend_y + 10:.1f}">{escape(_KIND_NAMES[kind])}</text>'
        )
        x += 150
    out.append("</svg>")
    return "\n".join(out) + "\n"
