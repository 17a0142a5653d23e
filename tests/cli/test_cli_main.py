"""The ``ringpipe`` entry point: every bad input is one line and exit 2, never a traceback.

The sweep covers every subcommand with the inputs that used to end in a traceback, a
MemoryError or minutes of work (issue 15, items 5 and 6).
"""

import subprocess
import sys

import pytest

import ringpipe
import ringpipe.cli.demo as demo_module
from ringpipe.cli import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, main
from ringpipe.environment import DEBUG_VAR as DEBUG_ENV

PLAN = ["plan", "--model", "gpt3-175b", "--cluster", "dgx-a100", "--global-batch", "1536"]


def _garbage(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(bytes(range(256)) * 8)
    return str(path)


SWEEP = [
    # schedule
    (["schedule", "1f1b", "--stages", "10000", "--microbatches", "100000"], "max_stages"),
    (["schedule", "1f1b", "--stages", "99999999999999999999", "-m", "2"], "max_stages"),
    (["schedule", "1f1b", "--stages", "512", "--microbatches", "100000"], "max_schedule_cells"),
    (["schedule", "1f1b", "--stages", "-3", "-m", "2"], "--stages: must be >= 1"),
    (["schedule", "1f1b", "-p", "2"], "--microbatches: required"),
    (["schedule", "nope", "-p", "2", "-m", "2"], "invalid choice"),
    (["schedule", "--from-csv", "{tmp}/missing.csv"], "cannot read"),
    (["schedule", "--from-csv", "{garbage.csv}"], "is not UTF-8 text"),
    (["schedule", "1f1b", "-p", "2", "-m", "2", "-o", "{tmp}"], "--output: cannot write"),
    # verify
    (["verify", "--layers", "1000000000"], "max_layers"),
    (["verify", "--dp", "100000"], "max_ranks"),
    (["verify", "--hidden", "4096", "--layers", "64"], "max_memory"),
    (["verify", "--tp", "0"], "tp"),
    (["verify", "--hidden", "x"], "invalid int value"),
    (["verify", "--backend", "mpi", "--np", "4", "--tp", "2", "--pp", "2", "--dp", "2"],
     "--np 8"),
    # demo
    (["demo", "--ranks", "20000"], "max_ranks"),
    (["demo", "--min-bytes", "1G", "--max-bytes", "1G"], "max_memory"),
    (["demo", "--min-bytes", "0"], "not a positive size"),
    (["demo", "--min-bytes", "8K", "--max-bytes", "4K"], "min_bytes <= max_bytes"),
    (["demo", "--iters", "0"], "--iters must be >= 1"),
    # plan
    ([*PLAN, "--nodes", "10000000"], "max_nodes"),
    ([*PLAN, "--nodes", "0"], "--nodes must be >= 1"),
    ([*PLAN, "--plot", "/nonexistent/dir/p.png"], "no directory /nonexistent/dir"),
    ([*PLAN, "--plot", "{tmp}"], "is a directory"),
    (["plan", "--model", "gpt3-175b", "--cluster-file", "{garbage.toml}", "--global-batch",
      "8"], "is not UTF-8 text"),
    (["plan", "--model", "gpt3-175b", "--cluster-file", "{garbage.json}", "--global-batch",
      "8"], "is not UTF-8 text"),
    # the top level
    ([], "required"),
    (["nope"], "invalid choice"),
    (["--bogus", "demo"], "unrecognized arguments"),
]


@pytest.mark.parametrize("argv,message", SWEEP, ids=[" ".join(a)[:60] for a, _ in SWEEP])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    for name in ("garbage.csv", "garbage.toml", "garbage.json"):
        argv = [a.replace("{" + name + "}", _garbage(tmp_path, name)) for a in argv]
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"ringpipe {ringpipe.__version__}\n"


def test_every_option_has_help():
    import argparse

    from ringpipe.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {a.option_strings or a.dest}" for name, p in sub.choices.items()
               for a in p._actions if not a.help]
    assert missing == []
    assert "none, then selective, then full" in sub.choices["plan"].format_help()


def _boom(args):
    raise RuntimeError("something broke")


def test_an_internal_error_is_one_line_unless_debug(monkeypatch, capsys):
    monkeypatch.setattr(demo_module, "run", _boom)
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert err == ("error: ringpipe demo: internal error: RuntimeError: something broke "
                   f"(run with --debug or {DEBUG_ENV}=1 for the traceback)\n")
    assert main(["--debug", "demo"]) == 1
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv(DEBUG_ENV, "1")
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("RuntimeError: something broke\n")


def test_ctrl_c_is_one_line(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_module, "run", interrupted)
    assert main(["demo"]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "error: interrupted\n"


def test_a_closed_stdout_ends_quietly():
    """``ringpipe demo | head``: the reader is gone before anything is written."""
    proc = subprocess.Popen([sys.executable, "-m", "ringpipe", "demo", "--max-bytes", "4K",
                             "--iters", "1", "--backend", "numpy"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == EXIT_BROKEN_PIPE
    assert err == ""
