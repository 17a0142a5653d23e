"""Edge cases found in review: each must fail cleanly, naming the problem."""

from fractions import Fraction

import numpy as np
import pytest

import ringpipe
from ringpipe.bandwidth import time_all_reduce
from ringpipe.cli import main
from ringpipe.schedules import (
    Action,
    CostModel,
    format_time_grid,
    generate,
    schedule_from_csv,
    simulate,
)


def test_csv_with_sparse_microbatch_indices_is_refused_without_allocating():
    with pytest.raises(ValueError, match="micro-batch indices must be 0..m-1"):
        schedule_from_csv("0F99999999999,0B99999999999\n1F99999999999,1B99999999999\n")


def test_csv_cli_huge_index_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "h.csv"
    path.write_text("0F99999999999,0B99999999999\n1F99999999999,1B99999999999\n")
    assert main(["schedule", "--from-csv", str(path)]) in (1, 2)
    assert "micro-batch indices" in capsys.readouterr().err


def test_text_grid_width_is_bounded():
    result = simulate(generate("1f1b", 4, 4), CostModel(forward=Fraction(1, 10**6)))
    with pytest.raises(ValueError, match="columns"):
        format_time_grid(result)


def test_action_digits_are_ascii_only():
    with pytest.raises(ValueError):
        Action.parse("\u0660F\u0661")


def test_masked_arrays_are_refused():
    xs = [np.ma.masked_array(np.arange(6.0), mask=[0, 1, 0, 0, 0, 0]) for _ in range(3)]
    with pytest.raises(TypeError, match="rank 0: .*masked array"):
        ringpipe.all_reduce(xs)


def test_sweep_sizes_must_be_whole_elements():
    with pytest.raises(ValueError, match="not a positive multiple"):
        time_all_reduce(2, 5, "ring")
    with pytest.raises(ValueError, match="not a positive multiple"):
        time_all_reduce(2, 2, "ring")


def test_persistent_backend_type_error():
    with pytest.raises(TypeError, match="backend must be a str"):
        ringpipe.all_reduce_init([np.zeros(4), np.zeros(4)], backend=3)


def test_verify_negative_seed_names_the_flag(capsys):
    assert main(["verify", "--seed", "-1"]) == 2
    assert "--seed" in capsys.readouterr().err


def test_plan_pinned_mesh_must_match_the_gpu_count(capsys):
    argv = ["plan", "--model", "gpt3-175b", "--cluster", "dgx-a100", "--nodes", "8",
            "--global-batch", "1536", "--tp", "8", "--pp", "8", "--dp", "2"]
    assert main(argv) == 2
    assert "8 × 8 × 2 = 128 GPUs, but the cluster has 64" in capsys.readouterr().err
