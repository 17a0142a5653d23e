"""``ringpipe schedule``: formats, exit codes and errors."""

import json

import pytest

from ringpipe.cli import main
from ringpipe.schedules import generate, save_csv


def run(capsys, *argv):
    code = main(["schedule", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_output(capsys):
    code, out, err = run(capsys, "1f1b", "--stages", "8", "--microbatches", "32", "--json")
    assert code == 0 and not err
    data = json.loads(out)
    assert data["schedule"] == "1f1b" and data["stages"] == 8 and data["chunks"] == 1
    assert data["bubble_fraction"] == pytest.approx(7 / 39)
    assert data["makespan"] == 3 * 39
    assert data["actions"]["0"][:2] == ["0F0", "0F1"]


def test_interleaved_json_reports_chunks(capsys):
    code, out, _ = run(
        capsys, "interleaved-1f1b", "-p", "4", "-m", "8", "-v", "3", "--format", "json"
    )
    assert code == 0 and json.loads(out)["chunks"] == 3


def test_zb_v_json(capsys):
    code, out, _ = run(capsys, "zb-v", "-p", "4", "-m", "8", "--json")
    data = json.loads(out)
    assert code == 0 and data["schedule"] == "zb-v" and data["chunks"] == 2
    assert data["peak_activations"] == [8, 8, 8, 8]
    assert data["actions"]["3"][:2] == ["3F0", "4F0"]  # the turn of the V
    assert data["bubble_fraction"] == pytest.approx(3 / 51)  # (p-1)/(6m+p-1)


def test_schedule_names_are_listed(capsys):
    with pytest.raises(SystemExit):
        main(["schedule", "--help"])
    out = capsys.readouterr().out
    assert "zb-v (p >= 1, m >= 1, v fixed at 2" in " ".join(out.split())


EXCHANGE_CSV = (
    "0F0,0SEND_F0,0F1,0SEND_F1,0F2,0SEND_F2,0RECV_B0,0B0,0RECV_B1,0B1,0RECV_B2,0B2\n"
    "1RECV_F0,1F0,1I0,1SEND_B0,1W0,1RECV_F1,1F1,1I1,1SEND_B1,1W1,1RECV_F2,1F2,1I2,1SEND_B2,1W2\n"
)


def test_blocking_send_deadlock_exits_1_unless_sends_isend(capsys, tmp_path):
    path = tmp_path / "exchange.csv"
    path.write_text(EXCHANGE_CSV)
    code, out, err = run(capsys, "--from-csv", str(path))
    assert code == 1 and out == ""
    assert "deadlock with blocking sends" in err and "[0SEND_F1]" in err
    code, out, err = run(capsys, "--from-csv", str(path), "--sends", "isend", "--json")
    assert code == 0 and json.loads(out)["makespan"] == 11


def test_text_output(capsys):
    code, out, _ = run(capsys, "zb-h1", "-p", "3", "-m", "3")
    assert code == 0
    assert out.splitlines()[0].startswith("zb-h1: p=3 m=3 v=1  makespan 11  bubble 2/11")
    assert out.splitlines()[1].startswith("rank 0 | 0F0 0F1 0F2")


@pytest.mark.parametrize("fmt", ["csv", "svg", "chrome"])
def test_other_formats_to_file(capsys, tmp_path, fmt):
    path = tmp_path / f"out.{fmt}"
    code, out, _ = run(capsys, "gpipe", "-p", "2", "-m", "2", "--format", fmt, "-o", str(path))
    assert code == 0 and out == ""
    text = path.read_text()
    assert {"csv": "0F0,0F1,0B0,0B1", "svg": "<svg", "chrome": "traceEvents"}[fmt] in text


def test_csv_with_comms(capsys):
    code, out, _ = run(capsys, "1f1b", "-p", "2", "-m", "1", "--format", "csv", "--comms")
    assert code == 0 and out.splitlines() == [
        "0F0,0SEND_F0,0RECV_B0,0B0",
        "1RECV_F0,1F0,1B0,1SEND_B0",
    ]


def test_from_csv_round_trip(capsys, tmp_path):
    path = tmp_path / "mine.csv"
    save_csv(generate("zb-h1", 4, 8), path)
    code, out, _ = run(capsys, "--from-csv", str(path), "--json")
    data = json.loads(out)
    assert code == 0 and data["schedule"] == "mine" and data["makespan"] == 27


def test_from_csv_failed_validation_exits_1_with_grid(capsys, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("0F0,0B0,0F1,0B1\n1F1,1B1,1F0,1B0\n")
    code, out, err = run(capsys, "--from-csv", str(path))
    assert code == 1 and out == ""
    assert "deadlock" in err and "[0B0]" in err and "rank 1 |" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope", "-p", "2", "-m", "2"], "invalid choice"),
        (["1f1b", "-p", "0", "-m", "2"], "--stages: must be >= 1"),
        (["1f1b", "-p", "2", "-m", "0"], "--microbatches: must be >= 1"),
        (["1f1b", "-p", "2"], "--microbatches: required"),
        (["1f1b", "-p", "2", "-m", "2", "-v", "2"], "does not take chunks"),
        (["zb-v", "-p", "2", "-m", "2", "-v", "3"], "always places 2 chunks per rank"),
        (["1f1b", "-p", "2", "-m", "2", "--sends", "eager"], "invalid choice"),
        (["interleaved-1f1b", "-p", "4", "-m", "6"], "multiple of p = 4"),
        (["--from-csv", "/nonexistent/x.csv"], "cannot read"),
        (["1f1b", "--from-csv", "x.csv"], "not both"),
        ([], "NAME or --from-csv"),
        (["1f1b", "-p", "2", "-m", "2", "--forward", "-1"], "must be >= 0"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "reason", "grid_row"),
    [
        ("0F0,0B0\n2F0,2B0\n", "stages [1] never appear", "rank 1 | 2F0  2B0"),
        ("0F0,0B0\n\n1F0,1B0\n", "3 rank rows but only 2 stages", "rank 2 | 1F0  1B0"),
        ("0F0,1F0,0B0\n1B0\n", "stage 1 runs on ranks 0 and 1", "rank 1 |[1B0]"),
    ],
)
def test_csv_rows_that_form_no_schedule_exit_1_with_grid(capsys, tmp_path, text, reason, grid_row):
    path = tmp_path / "broken.csv"
    path.write_text(text)
    code, out, err = run(capsys, "--from-csv", str(path))
    assert code == 1 and out == ""
    first, *grid = err.splitlines()
    assert first.startswith("error: ringpipe schedule: ") and reason in first
    assert grid[0].startswith("step ") and grid[1].startswith("rank 0 | 0F0")
    assert any(line.startswith(grid_row) for line in grid)


def test_bad_csv_cell_exits_2(capsys, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("0F0,zzz\n")
    code, _, err = run(capsys, "--from-csv", str(path))
    assert code == 2 and "column 1" in err
