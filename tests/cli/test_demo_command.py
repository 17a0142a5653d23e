"""``ringpipe demo`` and the CLI conventions (exit codes, one-line errors, --json)."""

import json
import subprocess
import sys

import pytest

from ringpipe.cli import main
from ringpipe.kernels.threads import ThreadPolicy
from ringpipe.measure.bandwidth import busbw_factor, exact_inputs, exact_sum, size_sweep


def test_demo_table_is_exact(capsys):
    assert main(["demo", "--ranks", "8", "--max-bytes", "64K", "--iters", "1"]) == 0
    out = capsys.readouterr().out
    assert "algorithm: ring" in out and "algorithm: tree" in out
    header = next(line for line in out.splitlines() if "#wrong" in line)
    assert header.split() == ["#", "size", "count", "type", "redop", "root",
                              *["time", "algbw", "busbw", "#wrong"] * 2]
    assert out.count("# Avg bus bandwidth") == 2  # one per algorithm, as nccl-tests
    assert out.count("# Out of bounds values : 0 OK") == 2
    # the ranks' threads are said, and the thread-pool step explained when there is one
    policy = ThreadPolicy.fair_share(8)
    assert f"# numba: {'one thread' if policy.numba < 2 else f'{policy.numba} threads'}" in out
    assert ("KernelTuning.parallel_min_bytes" in out) == (policy.numba > 1)
    assert "all results exact" in out
    # "rank" means one thing per line: the timeline's rows are pipeline ranks, the
    # counters' rows mesh ranks, each labelled as such
    lines = out.splitlines()
    timeline = [line for line in lines if " | " in line]
    assert [line.split(" | ")[0].strip() for line in timeline] == ["pipeline rank 0",
                                                                   "pipeline rank 1"]
    counters = lines.index(next(line for line in lines if line.lstrip().startswith("mesh rank")))
    assert lines[counters].split()[:5] == ["mesh", "rank", "dp", "pp", "tp"]
    assert not any(line.startswith("rank ") for line in lines)


def test_demo_json(capsys):
    assert main(["demo", "--ranks", "3", "--min-bytes", "1K", "--max-bytes", "4K", "--iters",
                 "1", "--backend", "numpy", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["wrong"] == 0 and doc["ranks"] == 3
    rows = doc["results"]["tree"]
    assert [(r["size_bytes"], r["in_place"]) for r in rows] == [
        (1024, False), (1024, True), (4096, False), (4096, True)]
    for r in rows:
        assert r["busbw_gbps"] == pytest.approx(r["algbw_gbps"] * 4 / 3)


@pytest.mark.parametrize("argv", [["demo", "--ranks", "0"], ["demo", "--max-bytes", "x"],
                                  ["demo", "--backend", "cuda"], ["nope"], []])
def test_bad_arguments_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


def test_console_script_runs():
    done = subprocess.run([sys.executable, "-m", "ringpipe", "demo", "--max-bytes", "4K",
                           "--iters", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "all results exact" in done.stdout


def test_busbw_factors_follow_nccl_tests():
    assert busbw_factor("all_reduce", 8) == pytest.approx(1.75)
    assert busbw_factor("all_gather", 4) == pytest.approx(0.75)
    assert busbw_factor("broadcast", 4) == 1.0
    assert busbw_factor("all_to_all", 4) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        busbw_factor("send_recv", 4)


def test_exact_inputs_sum_is_exact_and_sweep_sizes():
    xs = exact_inputs(5, 100, "float16")
    assert (sum(x.astype("int64") for x in xs) == exact_sum(5, 100, "int64")).all()
    assert size_sweep(4096, 65536) == [4096, 16384, 65536]
    with pytest.raises(ValueError):
        size_sweep(10, 5)
