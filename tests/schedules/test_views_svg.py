"""SVG timelines: labels fit their boxes, chunks have their own shades, a time axis."""

import xml.etree.ElementTree as ET

import pytest

from ringpipe.schedules import generate, render_svg, simulate
from ringpipe.schedules.views.svg import CHAR_WIDTH, FONT_SIZE, _text_colour

SVG = "{http://www.w3.org/2000/svg}"


def _boxes(root):
    """(rect, label text or None) of every action box."""
    for g in root.iter(f"{SVG}g"):
        text = g.find(f"{SVG}text")
        yield g.find(f"{SVG}rect"), None if text is None else text.text


@pytest.mark.parametrize("name,p,m,v", [("interleaved-1f1b", 8, 16, 2), ("zb-v", 4, 8, None),
                                        ("1f1b", 4, 12, None)])
def test_every_label_fits_its_box(name, p, m, v):
    root = ET.fromstring(render_svg(simulate(generate(name, p, m, v))))
    boxes = list(_boxes(root))
    assert boxes and all(text is not None for _, text in boxes)
    for rect, text in boxes:
        assert len(text) * CHAR_WIDTH * FONT_SIZE <= float(rect.get("width")), text


def test_chunks_of_one_rank_get_their_own_shade():
    root = ET.fromstring(render_svg(simulate(generate("interleaved-1f1b", 8, 16, 2))))
    fills: dict[str, set[str]] = {}
    for rect, text in _boxes(root):
        stage = int(text[1:].split(":")[0])
        fills.setdefault(rect.get("fill"), set()).add(stage // 8)  # chunk of the stage
    assert len(fills) == 4  # F and B, two chunks each
    assert all(len(chunks) == 1 for chunks in fills.values())
    legend = [t.text for t in root.iter(f"{SVG}text") if t.text and "chunk" in t.text]
    assert legend == ["F forward, chunk 0", "F forward, chunk 1", "B backward, chunk 0",
                      "B backward, chunk 1"]


def test_time_axis_spans_the_makespan():
    result = simulate(generate("1f1b", 4, 8))
    root = ET.fromstring(render_svg(result))
    ticks = [float(t.text) for t in root.iter(f"{SVG}text") if t.get("class") == "tick"]
    assert ticks[0] == 0 and ticks == sorted(ticks) and len(ticks) >= 3
    steps = {round(b - a, 9) for a, b in zip(ticks[:-1], ticks[1:], strict=True)}
    assert len(steps) == 1 and float(result.makespan) - ticks[-1] < steps.pop()
    assert "time" in [t.text for t in root.iter(f"{SVG}text")]


def test_explicit_scale_drops_labels_that_would_not_fit():
    root = ET.fromstring(render_svg(simulate(generate("interleaved-1f1b", 2, 4, 2)),
                                    unit_width=10))
    assert all(text is None for _, text in _boxes(root))
    with pytest.raises(ValueError, match="must be > 0"):
        render_svg(simulate(generate("1f1b", 2, 2)), unit_width=0)


def test_text_colour_contrasts_with_the_fill():
    assert _text_colour("#000000") == "white" and _text_colour("#ffffff") == "black"
