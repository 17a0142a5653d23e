"""Schedule synthesis: valid, within the memory cap, never slower than the fixed schedules,
strictly faster on uneven stage costs."""

import numpy as np
import pytest

from ringpipe.schedules import (
    CostModel,
    Schedule,
    add_communication,
    generate,
    schedule_spec,
    simulate,
    synthesis_report,
    synthesize,
    validate,
)
from ringpipe.schedules.encoded import encode, encoded_arrays
from ringpipe.schedules.memory import peak_memory
from ringpipe.schedules.synthesis.kernel import OK, list_schedule

#: F, I, W ratios: equal, and the zero-bubble paper's measured ones (T_W about half of
#: T_B; Qi et al., ICLR 2024, Table 6) rounded.
RATIOS = [(1.0, 1.0, 1.0), (1.0, 1.2, 0.6)]


def costs(p, v, shape, ratio=(1.0, 1.2, 0.6), latency=0.0):
    stages = p * v
    weight = {"uniform": [1.0] * stages,
              "last x2": [1.0] * (stages - 1) + [2.0],
              "ends heavy": [1.5] + [1.0] * (stages - 2) + [2.0],
              "ramp": [1 + 0.1 * s for s in range(stages)]}[shape]
    f, i, w = ratio
    return CostModel(forward=[f * x for x in weight], backward_input=[i * x for x in weight],
                     backward_weight=[w * x for x in weight], p2p_latency=latency)


CASES = [(p, m, v, shape, cap, ratio)
         for p, m, v in ((4, 8, 1), (4, 8, 2), (6, 12, 2))
         for shape in ("uniform", "last x2", "ends heavy", "ramp")
         for cap in (None, "2p", "p")
         for ratio in RATIOS]


@pytest.mark.parametrize("p,m,v,shape,cap,ratio", CASES)
def test_never_slower_than_the_best_fixed_schedule_and_within_the_cap(p, m, v, shape, cap,
                                                                     ratio):
    limit = None if cap is None else {"2p": 2 * p * v, "p": p * v}[cap]
    report = synthesis_report(costs(p, v, shape, ratio), limit, p, m, v)
    best = report.best_fixed
    assert best is not None and report.makespan <= best[1]
    sched = report.schedule
    assert sched.name == "synth" and sched.num_stages == p * v and not sched.has_comms
    validate(add_communication(sched), "batched")  # runs under blocking batched sends
    if limit is not None:
        assert max(peak_memory(encode(sched), [1.0] * (p * v))) <= limit
    assert simulate(sched, costs(p, v, shape, ratio)).makespan == report.makespan


@pytest.mark.parametrize("p,m,v,shape,latency", [
    (4, 8, 2, "last x2", 0.0),      # the last stage twice as heavy, two stages per rank
    (8, 16, 2, "last x2", 0.0),
    (4, 8, 2, "ends heavy", 0.0),
    (8, 16, 2, "ramp", 0.0),
    (8, 16, 1, "ramp", 0.0),
    (4, 8, 1, "last x2", 0.25),     # one stage per rank: strictly faster once messages cost
    (8, 12, 1, "last x2", 0.1),
])
def test_strictly_faster_on_uneven_costs(p, m, v, shape, latency):
    report = synthesis_report(costs(p, v, shape, latency=latency), None, p, m, v)
    name, best = report.best_fixed
    assert report.makespan < best, (report.origin, name, best)
    assert report.origin.startswith("list scheduling")


def test_one_stage_per_rank_last_twice_as_heavy_meets_the_lower_bound():
    """With free messages and one stage per rank, ZB-H1 already reaches the lower bound
    (p-1)·F + m·(F+I+W) of the heavy last stage; synthesis meets it too (none can beat
    it), and beats 1F1B."""
    p, m = 4, 8
    c = costs(p, 1, "last x2", (1.0, 1.0, 1.0))
    report = synthesis_report(c, p, p, m)
    assert report.makespan == (p - 1) * 1 + m * 6 == report.fixed["zb-h1"]
    assert report.makespan < report.fixed["1f1b"]


def test_the_list_scheduler_times_passes_as_the_simulator_does():
    """Every pass the list scheduler places starts when the simulator starts it (the rank
    is free and the inputs are there), for every knob setting."""
    p, m = 4, 6
    c = costs(p, 2, "ramp", latency=0.05)
    placement = (0, 1, 2, 3, 3, 2, 1, 0)
    args = [np.array(c.per_stage(n, 8), float) for n in ("forward", "backward_input",
                                                        "backward_weight")]
    for knobs in [(b, late, w) for b in (True, False) for late in (True, False)
                  for w in (0, 1, 2)]:
        status, rank, stage, kind, mb, start, end = list_schedule(
            np.array(placement), *args, 0.05, np.ones(8), np.zeros(8), np.full(p, np.inf),
            np.full(p, m), m, *knobs)
        assert status == OK and rank.size == 3 * 8 * m
        order = np.argsort(rank, kind="stable")
        row_start = np.concatenate([[0], np.cumsum(np.bincount(rank, minlength=p))])
        enc = encoded_arrays(stage[order], kind[order], mb[order], row_start, placement, m)
        result = simulate(Schedule.from_arrays("synth", placement, enc, m), c)
        simulated = [t.start for line in result.timelines for t in line]
        assert np.allclose(simulated, start[order]), knobs


def test_memory_units_and_pending_weight_passes():
    p, m = 4, 8
    held, pending = [2.0, 1.0, 1.0, 3.0], [1.0, 1.0, 1.0, 1.0]
    report = synthesis_report(costs(p, 1, "uniform"), 9.0, p, m, activation=held,
                              pending=pending)
    peaks = peak_memory(encode(report.schedule), held, pending)
    assert max(peaks) <= 9.0
    with pytest.raises(ValueError, match="rank 3 needs 3 to hold one micro-batch"):
        synthesize(costs(p, 1, "uniform"), 2.5, p, m, activation=held)
    with pytest.raises(ValueError, match="4 per-stage values for 8 stages"):
        synthesize(costs(p, 2, "uniform"), None, p, m, 2, activation=held)
    with pytest.raises(TypeError, match="CostModel"):
        synthesize({"forward": 1}, None, p, m)


def test_registered_as_synth_with_the_alias_auto():
    assert schedule_spec("auto") is schedule_spec("synth")
    uniform = generate("synth", 4, 8)
    assert simulate(uniform).makespan == simulate(generate("zb-h1", 4, 8)).makespan
