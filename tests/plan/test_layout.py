"""The stage layout: Megatron-style text, even and balanced splits, and plans that run it."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig
from ringpipe.plan.balance import balanced_counts, water_fill
from ringpipe.plan.layout import LayoutStage, PipelineLayout
from ringpipe.plan.training import Plan
from ringpipe.verify.training import verify_plan


def test_parse_megatron_examples():
    layout = PipelineLayout.parse("E,t*3|t*4|t*4|t*2,L")
    assert layout.layers_per_stage == (3, 4, 4, 2) and layout.num_layers == 13
    assert layout.stages[0] == LayoutStage(True, 3, False)
    assert layout.stages[-1] == LayoutStage(False, 2, True)
    # Megatron's DeepSeek-V3 example without the MTP layer, commas optional
    dsv3 = PipelineLayout.parse("Et*3|(tt|)*29,tL")
    assert dsv3.num_stages == 31 and dsv3.layers_per_stage[1:-1] == (2,) * 29
    alone = PipelineLayout.parse("E|(t|)*22L")
    assert alone.layers_per_stage == (0,) + (1,) * 22 + (0,)
    assert PipelineLayout.parse(" E , t | t , L ") == PipelineLayout.parse("Et|tL")


@pytest.mark.parametrize("text,match", [
    ("E||t|L", "stage 1 .* is empty"),
    ("t|E,L", "embedding E must open stage 0"),
    ("E,t|L|t", "loss L must close the last stage"),
    ("E,t|m|L", "MTP"),
    ("E,t*|L", "not a layout symbol"),
    ("E,(t|t,L", "unmatched '\\('"),
    ("E,t)|t,L", "unmatched '\\)'"),
    ("*3", "repeats nothing"),
    ("E,(t|)*999999999L", "expands to more than"),
    ("t|t", "embedding belongs to stage 0"),
])
def test_parse_refuses_with_a_reason(text, match):
    with pytest.raises(ValueError, match=match):
        PipelineLayout.parse(text)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=12))
def test_format_round_trips(counts):
    if len(counts) == 1:
        counts[0] = max(counts[0], 1)
    counts[1:-1] = [max(c, 1) for c in counts[1:-1]]
    layout = PipelineLayout.from_counts(counts)
    assert PipelineLayout.parse(layout.format()) == layout
    assert layout.layers_per_stage == tuple(counts)


def test_even_is_split_layers_and_check_names_mismatches():
    assert PipelineLayout.even(7, 3).format() == "E,t*3|t*2|t*2,L"
    with pytest.raises(ValueError, match="has 2 stages, the schedule has 4"):
        PipelineLayout.parse("E,t|t,L").check(2, 4)
    with pytest.raises(ValueError, match="holds 2 layers, the model has 3"):
        PipelineLayout.parse("E,t|t,L").check(3, 2)
    with pytest.raises(ValueError, match="empty stage"):
        LayoutStage(False, 0, False)


def _brute_force(layers, lo, base, unit):
    best = None
    for counts in itertools.product(*(range(lo_i, layers + 1) for lo_i in lo)):
        if sum(counts) == layers:
            worst = max(b + unit * k for b, k in zip(base, counts, strict=True))
            best = worst if best is None else min(best, worst)
    return best


@pytest.mark.parametrize("layers,extra", [(6, (0, 0, 0)), (7, (2.5, 0, 1.5)), (5, (4, 0, 4)),
                                          (9, (0.5, 0, 3))])
def test_balanced_one_stage_per_rank_minimises_the_slowest_stage(layers, extra):
    first, _, last = extra
    counts = balanced_counts(layers, 4, layer_cost=1.0, embedding_cost=first, head_cost=last)
    base = (first, 0, 0, last)
    got = max(b + k for b, k in zip(base, counts, strict=True))
    assert sum(counts) == layers and all(k >= 1 for k in counts[1:-1])
    assert got == _brute_force(layers, (0, 1, 1, 0), base, 1.0)


def test_balanced_interleaved_evens_the_ranks_then_their_stages():
    counts = balanced_counts(8, 8, layer_cost=1, embedding_cost=3, head_cost=3,
                             placement=[s % 4 for s in range(8)])
    loads = [0.0] * 4
    for s, k in enumerate(counts):
        loads[s % 4] += k + (3 if s == 0 else 0) + (3 if s == 7 else 0)
    assert max(loads) == 4 and counts[0] == counts[7] == 0  # E and L alone


def test_balanced_respects_the_memory_cap():
    free = balanced_counts(8, 2, layer_cost=1, embedding_cost=0, head_cost=4)
    assert free == (6, 2)
    capped = balanced_counts(8, 2, layer_cost=1, embedding_cost=0, head_cost=4,
                             layer_memory=10, fixed_memory=[0, 0], memory_cap=50)
    assert capped == (5, 3)  # 6 layers would need 60 bytes on rank 0
    with pytest.raises(ValueError, match="at most 10 of the 12 layers fit"):
        balanced_counts(12, 2, layer_cost=1, layer_memory=10, memory_cap=50)
    with pytest.raises(ValueError, match="over the cap"):
        balanced_counts(4, 3, layer_cost=1, layer_memory=10, fixed_memory=45, memory_cap=50)
    with pytest.raises(ValueError, match="at least 3 layers"):
        water_fill([0, 0, 0], [1, 1, 1], [5, 5, 5], 1.0, 2)


@pytest.mark.parametrize("schedule,layout", [
    ("1f1b", "E|t*2|t*3|L"),
    ("zb-h1", "E,t*5|L"),
    ("gpipe", "E|t*5,L"),
    ("interleaved-1f1b", "E|t|t|t|t|t,L"),
    ("zb-v", "E,t|t|t|t|t|L"),
])
@pytest.mark.parametrize("vocab", [0, 7])
def test_stages_holding_only_the_embedding_or_only_the_head_match_the_reference(
        schedule, layout, vocab):
    cfg = ModelConfig(layers=5, hidden=8, heads=2, seq=3, vocab=vocab)
    stages = PipelineLayout.parse(layout).num_stages
    pp = stages if schedule in ("1f1b", "zb-h1", "gpipe") else stages // 2
    plan = Plan(cfg, Mesh(pp=pp, tp=2), schedule=schedule, microbatches=pp if pp > 1 else 2,
                layout=layout)
    assert plan.layout == PipelineLayout.parse(layout) and plan.chunks == stages // pp
    report = verify_plan(plan, backend="numpy")
    assert report.ok and report.max_rel_error < 1e-10, report.errors


def test_balanced_plan_weighs_the_head_and_runs():
    cfg = ModelConfig(layers=6, hidden=8, heads=2, seq=4, vocab=512)  # head: 5 layers of FLOPs
    plan = Plan(cfg, Mesh(pp=3), microbatches=3, split="balanced")
    assert plan.layers_per_stage[-1] < plan.layers_per_stage[0]
    assert verify_plan(plan, backend="numpy").ok
    with pytest.raises(ValueError, match="not two"):
        Plan(cfg, Mesh(pp=3), layout="E,t*2|t*2|t*2,L", split="balanced")
    with pytest.raises(ValueError, match="unknown split"):
        Plan(cfg, Mesh(pp=3), split="greedy")
    with pytest.raises(ValueError, match="not a multiple of pp = 4"):
        Plan(cfg, Mesh(pp=4), schedule="interleaved-1f1b", layout="E,t*2|t*2|t*2,L")
