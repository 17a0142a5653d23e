"""SVG timeline of a simulated schedule, written as plain text (no browser, no library).

Layout, top to bottom: a visible title (schedule, p, m, v, makespan, bubble); one row
per rank with one box per compute action at its simulated start and duration; a time
axis in the cost model's units; a legend.

* **Colour**: one hue per action kind (F, B, I, W) and, when ranks hold several stages
  (interleaved, zb-v), one shade of that hue per chunk (the rank's k-th stage in stage
  order is chunk k), darkest for chunk 0, so the chunks of one rank stand apart. Box
  text is white on dark shades and black on light ones (WCAG relative luminance).
* **Labels**: the micro-batch, as ``s<stage>:<mb>`` when ranks hold several stages.
  By default (``unit_width=None``) the horizontal scale is chosen so the longest label
  fits the shortest box, with :data:`FONT_SIZE` px monospace text, whose glyphs are
  about :data:`CHAR_WIDTH` em wide; with an explicit ``unit_width`` a label that would
  not fit its box is left out (the box's tooltip still names the action).
* **Time axis**: ticks at 1, 2 or 5 × 10^k units, the smallest step that leaves at
  least :data:`TICK_SPACING` px between tick labels.
"""

from __future__ import annotations

import math
from html import escape  # xml.sax.saxutils would import urllib.request (~50 ms)

from ringpipe.schedules.actions import ActionKind
from ringpipe.schedules.schedule import Schedule
from ringpipe.schedules.simulate import SimulationResult

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
#: Font size (px) of every text; glyph width of the monospace font, in em.
FONT_SIZE = 11
CHAR_WIDTH = 0.62
#: Smallest distance (px) between two time-axis tick labels.
TICK_SPACING = 48.0
_PAD = 6.0  # px of box left free around a label
_MARGIN, _LABEL_WIDTH, _TITLE_HEIGHT, _AXIS_HEIGHT, _LEGEND_ROW = 8.0, 64.0, 22.0, 34.0, 20.0


def _shade(colour: str, chunk: int, chunks: int) -> str:
    """``colour`` mixed with white: chunk 0 as is, the last chunk 55% white."""
    mix = 0.55 * chunk / (chunks - 1) if chunks > 1 else 0.0
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * mix):02x}" for c in rgb)


def _text_colour(fill: str) -> str:
    """Black or white, whichever contrasts more with ``fill`` (WCAG 2 luminance)."""
    def linear(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4
    r, g, b = (linear(int(fill[i:i + 2], 16)) for i in (1, 3, 5))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "black" if (luminance + 0.05) / 0.05 > 1.05 / (luminance + 0.05) else "white"


def _chunk_of(schedule: Schedule) -> dict[int, int]:
    """stage -> its chunk index on its rank (rank's stages in increasing order)."""
    seen: dict[int, int] = {}
    chunk = {}
    for stage, rank in enumerate(schedule.placement):
        chunk[stage] = seen.get(rank, 0)
        seen[rank] = chunk[stage] + 1
    return chunk


def _label(stage: int, microbatch: int, show_stage: bool) -> str:
    return f"s{stage}:{microbatch}" if show_stage else f"{microbatch}"


def _text_width(text: str) -> float:
    return len(text) * CHAR_WIDTH * FONT_SIZE


def _auto_unit_width(result: SimulationResult, show_stage: bool) -> float:
    """px per time unit so that the longest label fits the shortest box (at least 24)."""
    widest, shortest = 0.0, math.inf
    for line in result.timelines:
        for t in line:
            if t.action.kind in KIND_COLOURS and t.end > t.start:
                text = _label(t.action.stage, t.action.microbatch, show_stage)
                widest = max(widest, _text_width(text) + 2 * _PAD)
                shortest = min(shortest, float(t.end - t.start))
    return 24.0 if shortest is math.inf else max(24.0, widest / shortest)


def _tick_step(unit_width: float) -> float:
    """The smallest 1, 2 or 5 × 10^k time step at least TICK_SPACING px wide."""
    exponent = math.floor(math.log10(TICK_SPACING / unit_width))
    for k in (exponent, exponent + 1):
        for mantissa in (1, 2, 5):
            step = mantissa * 10.0 ** k
            if step * unit_width >= TICK_SPACING:
                return step
    return 10.0 ** (exponent + 2)  # pragma: no cover - the loop always returns


def _axis(makespan: float, unit_width: float, y: float) -> list[str]:
    x0 = _MARGIN + _LABEL_WIDTH
    out = [f'<line x1="{x0:.1f}" y1="{y:.1f}" x2="{x0 + makespan * unit_width:.1f}" '
           f'y2="{y:.1f}" stroke="black" stroke-width="1"/>']
    step = _tick_step(unit_width)
    for i in range(int(makespan / step + 1e-9) + 1):
        t = i * step
        x = x0 + t * unit_width
        out.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{y + 4:.1f}" '
                   f'stroke="black" stroke-width="1"/>'
                   f'<text class="tick" x="{x:.1f}" y="{y + 15:.1f}" '
                   f'text-anchor="middle">{t:g}</text>')
    out.append(f'<text x="{_MARGIN:.1f}" y="{y + 15:.1f}">time</text>')
    return out


def render_svg(
    result: SimulationResult, *, unit_width: float | None = None, row_height: float = 26.0
) -> str:
    """The SVG document (a string) for ``result``; ``unit_width`` px per time unit
    (None: the narrowest scale at which every label fits its box)."""
    schedule = result.schedule
    show_stage = schedule.chunks_per_rank > 1
    fit = unit_width is None
    if unit_width is None:
        unit_width = _auto_unit_width(result, show_stage)
    if not unit_width > 0 or not row_height > 0:
        raise ValueError("unit_width and row_height: must be > 0")
    makespan = float(result.makespan)
    chunks, chunk_of = schedule.chunks_per_rank, _chunk_of(schedule)
    width = max(_LABEL_WIDTH + makespan * unit_width + 2 * _MARGIN + 16, 480.0)
    rows_top = _MARGIN + _TITLE_HEIGHT
    axis_y = rows_top + schedule.num_ranks * row_height + 4
    entries = [(k, c, _KIND_NAMES[k] + (f", chunk {c}" if chunks > 1 else ""))
               for k in KIND_COLOURS if k in schedule.kinds for c in range(chunks)]
    entry_width = max((_text_width(name) for *_, name in entries), default=0.0) + 28
    per_row = max(1, int((width - 2 * _MARGIN) // entry_width))
    legend_y = axis_y + _AXIS_HEIGHT
    height = legend_y + _LEGEND_ROW * math.ceil(len(entries) / per_row) + _MARGIN
    title = (f"{schedule.name}: p={schedule.num_ranks} m={schedule.num_microbatches} "
             f"v={chunks}, makespan {makespan:g}, bubble {float(result.bubble_fraction):.1%}")
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.1f}" height="{height:.1f}" '
        f'font-family="monospace" font-size="{FONT_SIZE}">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width:.1f}" height="{height:.1f}" fill="white"/>',
        f'<text x="{_MARGIN:.1f}" y="{_MARGIN + 12:.1f}" font-weight="bold">'
        f"{escape(title)}</text>",
    ]
    for rank, line in enumerate(result.timelines):
        y = rows_top + rank * row_height
        out.append(f'<text x="{_MARGIN:.1f}" y="{y + row_height / 2 + 4:.1f}">rank {rank}</text>')
        for timed in line:
            action = timed.action
            if action.kind not in KIND_COLOURS or timed.end <= timed.start:
                continue
            x = _MARGIN + _LABEL_WIDTH + float(timed.start) * unit_width
            w = float(timed.end - timed.start) * unit_width
            fill = _shade(KIND_COLOURS[action.kind], chunk_of[action.stage], chunks)
            text = _label(action.stage, action.microbatch, show_stage)
            shown = fit or _text_width(text) + 2 * _PAD <= w + 1e-9
            label = (f'<text x="{x + w / 2:.2f}" y="{y + row_height / 2 + 4:.1f}" '
                     f'fill="{_text_colour(fill)}" text-anchor="middle">{text}</text>'
                     if shown else "")
            out.append(
                f"<g><title>{action} [{float(timed.start):g}, {float(timed.end):g})</title>"
                f'<rect x="{x:.2f}" y="{y + 2:.1f}" width="{w:.2f}" height="{row_height - 4:.1f}" '
                f'fill="{fill}" stroke="black" stroke-width="0.5"/>{label}</g>'
            )
    out += _axis(makespan, unit_width, axis_y)
    for i, (kind, chunk, name) in enumerate(entries):
        x = _MARGIN + (i % per_row) * entry_width
        y = legend_y + (i // per_row) * _LEGEND_ROW
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="12" height="12" '
            f'fill="{_shade(KIND_COLOURS[kind], chunk, chunks)}" stroke="black" '
            f'stroke-width="0.5"/><text x="{x + 16:.1f}" y="{y + 10:.1f}">{escape(name)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
