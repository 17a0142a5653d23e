"""Bad input to the schedules API and to ``ringpipe schedule --from-csv`` is refused by
name (found by an adversarial pass): NaN/inf costs, mistyped actions and placements,
non-path paths, and CSV schedules beyond the limits."""

import math

import numpy as np
import pytest

from ringpipe.cli import main
from ringpipe.schedules import (
    Action,
    ActionKind,
    CostModel,
    Schedule,
    add_communication,
    generate,
    load_csv,
    save_csv,
    simulate,
)

F, B = ActionKind.FORWARD, ActionKind.FULL_BACKWARD


@pytest.mark.parametrize("kwargs,field", [
    ({"p2p_latency": math.nan}, "p2p_latency"),
    ({"message_bytes": math.inf}, "message_bytes"),
    ({"forward": math.nan}, "forward"),
    ({"backward_input": [1.0, math.inf]}, "backward_input"),
])
def test_non_finite_costs_are_refused(kwargs, field):
    with pytest.raises(ValueError, match=f"{field}: .*finite"):
        CostModel(**kwargs)


def test_a_finite_latency_still_shapes_the_bubble():
    s = add_communication(generate("1f1b", 4, 8))
    assert simulate(s, CostModel(p2p_latency=1)).makespan > simulate(s, CostModel()).makespan


@pytest.mark.parametrize("row,fragment", [
    ((Action(0, "F", 0),), "kind must be an ActionKind"),
    ((Action(0, F, 0.5),), "microbatch must be an int"),
    ((Action(True, F, 0),), "stage must be an int"),
    (("0F0", "0B0"), "expected Action or None"),
])
def test_mistyped_actions_are_refused(row, fragment):
    with pytest.raises(TypeError, match=fragment):
        Schedule("x", (0,), (row,), 1)


def test_a_numpy_placement_is_refused_by_type():
    with pytest.raises(TypeError, match="placement: expected a tuple"):
        Schedule("x", np.array([0]), ((Action(0, F, 0), Action(0, B, 0)),), 1)


def test_simulate_wants_the_execution_order_object():
    s = generate("1f1b", 2, 2)
    with pytest.raises(TypeError, match="execution_order: expected the ExecutionOrder"):
        simulate(s, execution_order="x")


def test_csv_paths_are_checked(tmp_path):
    with pytest.raises(TypeError, match="path: expected a str or os.PathLike"):
        load_csv(5)
    with pytest.raises(ValueError, match="cannot write the CSV"):
        save_csv(generate("1f1b", 2, 2), tmp_path)  # a directory


def test_from_csv_obeys_the_limits(tmp_path, monkeypatch, capsys):
    path = tmp_path / "s.csv"
    save_csv(generate("1f1b", 2, 8), path)
    assert main(["schedule", "--from-csv", str(path)]) == 0
    capsys.readouterr()
    monkeypatch.setenv("RINGPIPE_LIMITS", "max_microbatches=4")
    assert main(["schedule", "--from-csv", str(path)]) == 2
    err = capsys.readouterr().err
    assert "--from-csv micro-batches = 8 exceeds the limit max_microbatches=4" in err
    monkeypatch.setenv("RINGPIPE_LIMITS", "max_schedule_cells=1")
    assert main(["schedule", "--from-csv", str(path)]) == 2
    assert "max_schedule_cells" in capsys.readouterr().err
