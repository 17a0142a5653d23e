"""Every subcommand that reads a file the user names refuses, quickly and on one line with
exit 2, a FIFO, ``/dev/zero``, a directory and a missing path in its place: the one safe
reader (:mod:`ringpipe.files`) opens without blocking and checks the file type first.

Each command runs in-process under an alarm, so a reader that blocks (a FIFO with no
writer) or reads without end (``/dev/zero``) fails the test instead of hanging it.
"""

from __future__ import annotations

import os
import signal
import sys

import pytest

import ringpipe.files as files
import ringpipe.mpi.launch  # noqa: F401 - sys.modules["ringpipe.mpi.launch"] below
from ringpipe.cli import main

LAUNCH_MODULE = sys.modules["ringpipe.mpi.launch"]

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs SIGALRM")

#: Seconds one refusal may take before the test calls it a hang.
QUICKLY = 20
PLAN = ["plan", "--layers", "2", "--hidden", "32", "--heads", "4", "--seq", "8", "--vocab",
        "64", "--global-batch", "4"]
VERIFY = ["verify", "--pp", "2", "--hidden", "16", "--heads", "4", "--seq", "4"]

#: Every subcommand that takes an input file: argv with {} where the path goes.
COMMANDS = {
    "plan --cluster-file": [*PLAN, "--cluster-file", "{}"],
    "plan --inference --cluster-file": ["plan", "--inference", "--model", "llama2-7b",
                                        "--cluster-file", "{}"],
    "verify --cluster-file": [*VERIFY, "--backend", "numpy", "--cluster-file", "{}"],
    "verify --backend mpi --cluster-file": [*VERIFY, "--backend", "mpi", "--cluster-file",
                                            "{}"],
    "verify --backend mpi --hostfile": [*VERIFY, "--backend", "mpi", "--hostfile", "{}"],
    "verify --inference --backend mpi --hostfile": [
        "verify", "--inference", "--pp", "2", "--hidden", "16", "--backend", "mpi",
        "--hostfile", "{}"],
    "schedule --from-csv": ["schedule", "--from-csv", "{}"],
    "verify --schedule-csv": [*VERIFY, "--schedule-csv", "{}"],
    "verify --backend mpi --schedule-csv": [*VERIFY, "--backend", "mpi", "--schedule-csv",
                                            "{}"],
    "plan --inference --trace": ["plan", "--inference", "--model", "llama2-7b", "--cluster",
                                 "dgx-a100", "--trace", "{}"],
    "plan --cluster-file --set": [*PLAN, "--cluster-file", "{}", "--set",
                                  "kernels.saturation=100"],
    "cluster check": ["cluster", "check", "{}"],
    "calibrate --from-nccl-tests": ["calibrate", "--from-nccl-tests", "{}", "-o",
                                    "{}.out.toml"],
}


def _fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return str(path)


#: The stand-ins: how to make each, and what the one line says about it.
STAND_INS = {
    "fifo": (_fifo, "it is a FIFO (named pipe), not a regular file"),
    "/dev/zero": (lambda tmp_path: "/dev/zero", "it is a character device, not a regular file"),
    "directory": (lambda tmp_path: str(tmp_path), "it is a directory"),
    "missing": (lambda tmp_path: str(tmp_path / "missing.txt"), "no such file"),
}


class _Hung(Exception):
    pass


def _alarm(signum, frame):
    raise _Hung()


@pytest.mark.parametrize("stand_in", list(STAND_INS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_non_regular_input_file_is_refused_on_one_line(command, stand_in, tmp_path, capsys,
                                                         monkeypatch):
    def no_launch(*args, **kwargs):
        raise AssertionError("mpiexec must not start for an unusable input file")

    monkeypatch.setattr(LAUNCH_MODULE, "launch", no_launch)
    make, words = STAND_INS[stand_in]
    path = make(tmp_path)
    argv = [a.replace("{}", path) for a in COMMANDS[command]]
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, QUICKLY)
    try:
        status = main(argv)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    out, err = capsys.readouterr()
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert path in err and words in err, err
    assert "_Hung" not in err, f"{command} blocked on {stand_in}"


def test_the_reader_refuses_without_blocking_and_names_the_file(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 101)
    with pytest.raises(ValueError, match="big.txt: the hostfile is 101 bytes; a hostfile is "
                                         "at most 100 bytes"):
        files.read_text(path, "hostfile", 100)
    path.write_bytes(b"a\0b")
    with pytest.raises(ValueError, match="contains NUL bytes"):
        files.read_text(path, "hostfile", 100)
    path.write_bytes(b"\xef\xbb\xbfhost:2\n")
    assert files.read_text(path, "hostfile", 100) == "host:2\n"  # BOM dropped
    with pytest.raises(TypeError, match="hostfile: expected a path, got int"):
        files.read_text(3, "hostfile", 100)  # not a file descriptor
