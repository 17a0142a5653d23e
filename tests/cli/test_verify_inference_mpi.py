"""``verify --inference``: MPI-only flags honoured with --backend mpi and refused
in-process, as plain ``verify`` does; job statuses mapped alike; the rank entry point
checks its arguments collectively (one line, exit 2)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ringpipe.cli import main
from ringpipe.cli.verify.mpi_job import LAUNCH_GRACE
from ringpipe.mpi.launch import launch

LAUNCH_MODULE = sys.modules["ringpipe.mpi.launch"]

SMALL = ["verify", "--inference", "--tp", "2", "--hidden", "16", "--prompt-len", "4",
         "--new-tokens", "2"]


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("extra,flag", [
    (["--hostfile", "h"], "--hostfile"), (["--timeout", "3"], "--timeout"),
    (["--mpiexec-arg", "-v"], "--mpiexec-arg"), (["--np", "2"], "--np"),
    (["--device", "cupy"], "--device cupy"), (["--cluster-file", "c.toml"], "--cluster-file"),
])
def test_in_process_refuses_mpi_only_and_unsupported_flags(capsys, extra, flag):
    assert main([*SMALL, *extra]) == 2
    assert flag in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("extra,flag", [
    (["--timeout", "-1"], "--timeout"), (["--hostfile", "/nonexistent"], "--hostfile"),
    (["--device", "cupy"], "--device cupy"), (["--cluster-file", "c.toml"], "--cluster-file"),
    (["--np", "3"], "--np"),
])
def test_mpi_backend_checks_flags_before_launch(capsys, monkeypatch, extra, flag):
    def no_launch(*a, **k):
        raise AssertionError("mpiexec must not start")
    monkeypatch.setattr(LAUNCH_MODULE, "launch", no_launch)
    assert main([*SMALL, "--backend", "mpi", *extra]) == 2
    err = one_error_line(capsys.readouterr().err)
    assert flag in err or "mpiexec -n 2" in err


def test_mpi_backend_passes_timeout_hostfile_and_maps_statuses(capsys, monkeypatch, tmp_path):
    calls = []

    def fake(nprocs, argv, **kw):
        calls.append((nprocs, argv, kw))
        return subprocess.CompletedProcess([], 9)  # a rank killed by SIGKILL
    monkeypatch.setattr(LAUNCH_MODULE, "launch", fake)
    hosts = tmp_path / "hosts"
    hosts.write_text("a:2\n")
    assert main([*SMALL, "--backend", "mpi", "--timeout", "7", "--hostfile", str(hosts),
                 "--mpiexec-arg=-v"]) == 1
    assert "ended with status 9" in one_error_line(capsys.readouterr().err)
    nprocs, argv, kw = calls[0]
    assert nprocs == 2 and argv[:4] == ["-m", "ringpipe.mpi", "verify", "--inference"]
    assert argv[-1] == "--timeout=7.0"  # every value joined to its flag
    assert kw["mpiexec_args"] == ["-f", str(hosts), "-v"] and kw["local"] is False
    assert 7.0 < kw["timeout"] <= 7.0 + LAUNCH_GRACE  # the launcher's own deadline


@pytest.mark.mpi
def test_the_deadline_reaches_the_ranks(capfd):
    status = main(["verify", "--inference", "--tp", "2", "--hidden", "16", "--new-tokens",
                   "400", "--backend", "mpi", "--timeout", "0.001"])
    assert status == 1
    err = capfd.readouterr().err  # the ranks' watchdog or the launcher's, whichever first
    assert "timed out after 0.001 s (--timeout 0.001)" in err or "--timeout of 0.001 s" in err


@pytest.mark.mpi
@pytest.mark.parametrize("nprocs,extra,words", [
    (3, ["--tp", "2"], "mpiexec -n 2"),
    (2, ["--tp", "2", "--new-tokens", "0"], "--new-tokens must be >= 1"),
])
def test_rank_entry_point_checks_arguments_collectively(nprocs, extra, words):
    job = launch(nprocs, ["-m", "ringpipe.mpi", "verify", "--inference", *extra], timeout=30,
                 capture=True)
    assert job.returncode == 2
    assert words in one_error_line(job.stderr)


@pytest.mark.parametrize("flag,value", [("--seq", "16"), ("--schedule", "gpipe")])
def test_training_only_flags_are_refused_with_inference(flag, value, capsys):
    from ringpipe.cli import main

    assert main(["verify", "--inference", "--pp", "2", flag, value]) == 2
    assert f"{flag} does not apply to --inference" in capsys.readouterr().err


def test_a_job_killed_by_sigpipe_is_a_closed_stdout(capsys, monkeypatch):
    """mpiexec forwarding rank output to a closed pipe dies of SIGPIPE: 141, quietly."""
    monkeypatch.setattr(LAUNCH_MODULE, "launch",
                        lambda *a, **k: subprocess.CompletedProcess([], -13))
    assert main([*SMALL, "--backend", "mpi"]) == 141
    assert capsys.readouterr().err == ""


@pytest.mark.mpi
@pytest.mark.parametrize("inference", [True, False])
def test_verify_on_mpi_into_a_closed_pipe_exits_141(inference):
    """``ringpipe verify ... --backend mpi --np 4 | head`` with the reader gone."""
    argv = [sys.executable, "-m", "ringpipe", "verify", "--tp", "2", "--pp", "2",
            "--backend", "mpi", "--np", "4", *(["--inference"] if inference else [])]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "ended with status" not in err
