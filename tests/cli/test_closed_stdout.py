"""A reader that goes away (``| head -1``) ends a command quietly with 141, in-process
and under MPI (where mpiexec, not ringpipe, meets the closed pipe and dies of SIGPIPE);
a stdout closed from the start (``>&-``) ends it with one line and 141 -- it raised
``AttributeError: 'NoneType' object has no attribute 'write'`` -- and an MPI job is not
started on one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

SMALL = "--pp 2 --microbatches 2 --hidden 16 --heads 4 --seq 4"


def _bash(script: str) -> subprocess.CompletedProcess[str]:
    ringpipe = f"{sys.executable} -m ringpipe"
    return subprocess.run(["bash", "-c", script.replace("RINGPIPE", ringpipe)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RINGPIPE_DEBUG": "0"})


def _pipe_status(command: str, lines: int) -> tuple[int, str]:
    """Exit status of ``command | head -LINES`` and its stderr; LINES 0: the reader is
    gone before the command starts (``| true``; a reader that leaves during one large
    write may be given the whole write by some kernels, so the 141 case is made sure)."""
    reader = "true" if lines == 0 else f"head -{lines} >/dev/null"
    prefix = "sleep 0.5; exec " if lines == 0 else ""
    job = _bash(f"({prefix}RINGPIPE {command} 2>err.txt) | {reader}; "
                "echo ${PIPESTATUS[0]}; cat err.txt >&2; rm -f err.txt")
    return int(job.stdout.strip().splitlines()[-1]), job.stderr


#: (command, lines head reads, statuses): 141 where output still comes after the reader
#: is gone; 0 or 141 where all of it may already sit in the pipe's buffer by then.
PIPES = [
    ("schedule zb-v -p 16 -m 256 --format json", 0, (141,)),  # the reader already gone
    (f"verify {SMALL} --verbose", 1, (0, 141)),
    ("verify --inference --pp 2 --hidden 16", 3, (0, 141)),
    pytest.param(f"verify --backend mpi --np 2 {SMALL} --verbose", 1, (141,),
                 marks=pytest.mark.mpi),  # the placement map comes seconds before the rest
    pytest.param("verify --inference --backend mpi --pp 2 --hidden 16", 3, (0, 141),
                 marks=pytest.mark.mpi),
]


@pytest.mark.parametrize("command,lines,statuses", PIPES)
def test_a_closed_pipe_is_141_and_quiet(command, lines, statuses, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, err = _pipe_status(command, lines)
    assert status in statuses, (status, err)  # MPI was 1: "the MPI job ended with status -13"
    assert err == "", err


@pytest.mark.parametrize("command", [
    f"verify {SMALL} --backend numpy",
    "verify --inference --pp 2 --hidden 16",
    pytest.param(f"verify --backend mpi {SMALL}", marks=pytest.mark.mpi),
    pytest.param("verify --inference --backend mpi --pp 2 --hidden 16",
                 marks=pytest.mark.mpi),
])
def test_a_stdout_closed_from_the_start_is_one_line(command):
    job = _bash(f"RINGPIPE {command} >&-; echo $? >&2")
    *lines, status = job.stderr.strip().splitlines()
    assert int(status) == 141 and len(lines) == 1, job.stderr
    assert lines[0] == ("error: ringpipe verify: stdout is closed (>&-); give the command a "
                        "stdout, e.g. > FILE or > /dev/null")
    assert "AttributeError" not in job.stderr and "mpiexec" not in job.stderr


def test_a_command_that_needs_no_stdout_runs_without_one(tmp_path):
    out = tmp_path / "s.txt"
    job = _bash(f"RINGPIPE schedule 1f1b -p 2 -m 2 -o {out} >&-; echo $? >&2")
    assert job.stderr.strip() == "0" and out.read_text().startswith("1f1b: p=2 m=2")
