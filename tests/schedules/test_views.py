"""Views: text grids, SVG and Chrome trace."""

import json
import xml.etree.ElementTree as ET
from fractions import Fraction

import pytest

from ringpipe.schedules import (
    CostModel,
    chrome_trace,
    chrome_trace_json,
    format_step_grid,
    format_time_grid,
    generate,
    one_f_one_b,
    render_svg,
    simulate,
    summary,
)

SVG = "{http://www.w3.org/2000/svg}"


def test_time_grid_matches_megatron_picture():
    grid = format_time_grid(simulate(one_f_one_b(2, 2)))
    assert grid.splitlines() == [
        "rank 0 | 0F0 0F1 ... ... 0B0 --- ... 0B1 ---",
        "rank 1 | ... 1F0 1B0 --- 1F1 1B1 --- ... ...",
    ]


def test_time_grid_slot_defaults_to_gcd_of_durations():
    costs = CostModel(forward=Fraction(1, 2), backward_input=Fraction(1, 2), backward_weight=1)
    lines = format_time_grid(simulate(one_f_one_b(1, 1), costs)).splitlines()
    assert lines == ["rank 0 | 0F0 0B0 --- ---"]
    with pytest.raises(ValueError, match="slot"):
        format_time_grid(simulate(one_f_one_b(1, 1), CostModel(forward=0.5)))


def test_step_grid_marks():
    grid = format_step_grid(one_f_one_b(2, 2), [(1, 2)], window=None)
    assert "[1F1]" in grid and grid.count("[") == 1
    assert grid.splitlines()[0].startswith("step")


def test_svg_is_well_formed_with_one_box_per_compute_action():
    result = simulate(generate("zb-h1", 3, 4))
    root = ET.fromstring(render_svg(result))
    assert root.tag == f"{SVG}svg"
    boxes = [g.find(f"{SVG}rect") for g in root.iter(f"{SVG}g")]
    assert len(boxes) == 3 * 4 * 3
    assert len({b.get("fill") for b in boxes}) == 3  # F, I, W colours
    labels = {g.find(f"{SVG}text").text for g in root.iter(f"{SVG}g")}
    assert labels == {"0", "1", "2", "3"}


def test_svg_shows_stage_when_ranks_hold_several():
    root = ET.fromstring(render_svg(simulate(generate("interleaved-1f1b", 2, 2, 2))))
    labels = {g.find(f"{SVG}text").text for g in root.iter(f"{SVG}g")}
    assert "s2:0" in labels


def test_chrome_trace_has_one_track_per_rank():
    result = simulate(one_f_one_b(3, 2))
    trace = json.loads(chrome_trace_json(result))
    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(events) == 3 * 2 * 2
    assert {e["tid"] for e in events} == {0, 1, 2}
    names = {e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    assert names == {"rank 0", "rank 1", "rank 2"}
    first = next(e for e in events if e["name"] == "2F0")
    assert first["ts"] == 2000.0 and first["dur"] == 1000.0
    assert chrome_trace(result, us_per_unit=1.0)["traceEvents"][-1]["dur"] == 2.0


def test_summary_layout():
    data = summary(simulate(generate("1f1b", 8, 32)))
    assert list(data) == [
        "schedule",
        "stages",
        "microbatches",
        "chunks",
        "bubble_fraction",
        "makespan",
        "peak_activations",
        "actions",
    ]
    assert data["bubble_fraction"] == pytest.approx(7 / 39)
    assert data["peak_activations"] == [8, 7, 6, 5, 4, 3, 2, 1]
    assert data["actions"]["7"][:3] == ["7F0", "7B0", "7F1"]
    assert list(data["actions"]) == [str(r) for r in range(8)]
    json.dumps(data)


def test_text_grid_width_is_bounded():
    result = simulate(generate("1f1b", 4, 4), CostModel(forward=Fraction(1, 10**6)))
    with pytest.raises(ValueError, match="columns"):
        format_time_grid(result)
