"""CSV schedules from files: BOM, binary garbage, NUL bytes, the csv field limit."""

import csv

import pytest

from ringpipe.cli import main
from ringpipe.schedules import generate, load_csv, save_csv, schedule_from_csv


def test_csv_with_sparse_microbatch_indices_is_refused_without_allocating():
    with pytest.raises(ValueError, match="micro-batch indices must be 0..m-1"):
        schedule_from_csv("0F99999999999,0B99999999999\n1F99999999999,1B99999999999\n")


def test_csv_cli_huge_index_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "h.csv"
    path.write_text("0F99999999999,0B99999999999\n1F99999999999,1B99999999999\n")
    assert main(["schedule", "--from-csv", str(path)]) in (1, 2)
    assert "micro-batch indices" in capsys.readouterr().err


def test_a_byte_order_mark_is_ignored(tmp_path):
    path = tmp_path / "bom.csv"
    save_csv(generate("1f1b", 2, 3), path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    loaded = load_csv(path)
    assert loaded.actions == generate("1f1b", 2, 3).actions
    assert schedule_from_csv("\ufeff0F0,0B0\n").num_ranks == 1


@pytest.mark.parametrize("content,message", [
    (bytes(range(256)) * 4, "is not UTF-8 text"),
    (b"0F0,\x000B0\n", "contains NUL bytes"),
    (b"0F0," + b"x" * (csv.field_size_limit() + 1) + b"\n",
     f"longer than the csv field limit of {csv.field_size_limit()}"),
    (b'0F0,"unterminated\n', "csv row 0"),
])
def test_unreadable_files_are_one_line_errors_naming_the_file(tmp_path, capsys, content,
                                                              message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        load_csv(path)
    assert str(path) in str(info.value)
    assert main(["schedule", "--from-csv", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and message.split(" of ")[0] in err
