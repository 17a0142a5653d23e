"""Faults: a raising rank aborts the job loudly and fast; bad sizes are refused.

Every job runs under a subprocess timeout of :data:`ABORT_WITHIN` seconds (the whole
process group is killed and the test fails if it is exceeded), so a hang cannot pass.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ringpipe.cli import main
from ringpipe.mpi.guard import format_rank_error
from ringpipe.mpi.launch import find_mpiexec, launch, mpiexec_environment

pytestmark = pytest.mark.mpi

ABORT_WITHIN = 30
PLAN = ["--tp", "2", "--pp", "2", "--microbatches", "2", "--layers", "2", "--hidden", "16",
        "--heads", "4", "--seq", "4"]

RAISE_IN_RANK = textwrap.dedent("""
    import sys
    from mpi4py import MPI
    import ringpipe.runtime.training as runtime
    from ringpipe.cli.ranks.main import main

    real = runtime.{function}

    def failing(*args, **kwargs):
        if MPI.COMM_WORLD.Get_rank() == {rank}:
            raise RuntimeError("injected failure on purpose")
        return real(*args, **kwargs)

    runtime.{function} = failing
    sys.exit(main(sys.argv[1:]))
""")

MISMATCH = textwrap.dedent("""
    import numpy as np
    from mpi4py import MPI
    from ringpipe.mpi import ProcessGroup
    from ringpipe.mpi.guard import run_guarded

    def work():
        group = ProcessGroup(MPI.COMM_WORLD, name="world")
        rank = MPI.COMM_WORLD.Get_rank()
        group.all_reduce(np.ones(10 + rank, np.float32))

    run_guarded(work)
""")


def _script(tmp_path, text: str) -> str:
    path = tmp_path / "job.py"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("function,rank", [("stage_forward", 1), ("stage_backward", 3)])
def test_raising_rank_aborts_the_job_with_its_message(tmp_path, function, rank):
    script = _script(tmp_path, RAISE_IN_RANK.format(function=function, rank=rank))
    job = launch(4, [script, "verify", *PLAN], timeout=ABORT_WITHIN, capture=True)
    assert job.returncode != 0
    assert f"rank {rank}: RuntimeError: injected failure on purpose" in job.stderr
    assert "# OK" not in job.stdout


def test_mismatched_buffer_sizes_abort_naming_the_rank(tmp_path):
    job = launch(2, [_script(tmp_path, MISMATCH)], timeout=ABORT_WITHIN, capture=True)
    assert job.returncode != 0
    assert ("CollectiveError: all_reduce (world): rank 1: 11 elements of float32, op 'sum', "
            "algorithm 'ring' but rank 0 has 10 elements of float32") in job.stderr


def test_wrong_process_count_is_refused_by_the_ranks():
    job = launch(3, ["-m", "ringpipe.mpi", "verify", *PLAN], timeout=ABORT_WITHIN,
                 capture=True)
    assert job.returncode == 2
    message = ("the mesh dp1 x pp2 x tp2 has 4 ranks but the job has 3 processes; start it "
               "with mpiexec -n 4")
    assert job.stderr.count(message) == 1  # printed once, by rank 0


def test_wrong_np_is_refused_before_mpiexec_starts(capsys):
    assert main(["verify", "--backend", "mpi", "--np", "3", *PLAN]) == 2
    err = capsys.readouterr().err
    assert "has 4 ranks but the job has 3 processes" in err and err.count("\n") == 1


def test_np_needs_the_mpi_backend(capsys):
    assert main(["verify", "--backend", "numpy", "--np", "4", *PLAN]) == 2
    assert "--np only applies to --backend mpi" in capsys.readouterr().err


def test_bad_rank_side_arguments_exit_2_once():
    job = launch(2, ["-m", "ringpipe.mpi", "verify", "--tp", "3"], timeout=ABORT_WITHIN,
                 capture=True)
    assert job.returncode == 2
    assert job.stderr.count("error: python -m ringpipe.mpi:") == 1


def test_launcher_environment_and_mpiexec():
    assert find_mpiexec().endswith("mpiexec")
    env = mpiexec_environment(64, {"OMP_NUM_THREADS": "3"})
    assert env["OMP_NUM_THREADS"] == "3"  # never overrides the caller
    assert env["OPENBLAS_NUM_THREADS"] == "1" and env["HYDRA_LAUNCHER"] == "fork"
    assert env["MPIR_CVAR_POLLS_BEFORE_YIELD"] == "10"  # oversubscribed: yield sooner
    assert format_rank_error(3, ValueError("bad")) == "rank 3: ValueError: bad"
    with pytest.raises(ValueError, match="nprocs must be >= 1"):
        launch(0, ["-c", "pass"])


# ---- failures the guard used to miss: sys.exit, one rank's arguments, a stopped rank

EXIT_IN_RANK = textwrap.dedent("""
    import sys
    from mpi4py import MPI
    from ringpipe.mpi.guard import run_guarded

    def work():
        if MPI.COMM_WORLD.Get_rank() == 1:
            sys.exit(3)
        MPI.COMM_WORLD.Barrier()  # the other ranks wait for rank 1 forever

    run_guarded(work)
""")

STOP_IN_RANK = RAISE_IN_RANK.replace(
    'raise RuntimeError("injected failure on purpose")',
    'import os, signal; os.kill(os.getpid(), signal.SIGSTOP)')


def _job(cmd: list[str], nprocs: int) -> subprocess.CompletedProcess[str]:
    """Run a hand-made mpiexec command line in its own group, killed after ABORT_WITHIN."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=mpiexec_environment(nprocs), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=ABORT_WITHIN)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_sys_exit_inside_the_guard_aborts_the_job(tmp_path):
    job = launch(3, [_script(tmp_path, EXIT_IN_RANK)], timeout=ABORT_WITHIN, capture=True)
    assert job.returncode != 0
    assert "rank 1: SystemExit: 3" in job.stderr


@pytest.mark.parametrize("odd", [["--hidden", "32"], ["--tp", "3"], ["--microbatches", "4"]])
def test_one_rank_with_other_arguments_ends_the_job(odd):
    """Rank 2 alone gets different arguments (valid or not): every rank exits 2."""
    python = [sys.executable, "-m", "ringpipe.mpi", "verify"]
    cmd = [find_mpiexec(), "-n", "2", *python, *PLAN, ":", "-n", "1", *python, *PLAN, *odd,
           ":", "-n", "1", *python, *PLAN]
    job = _job(cmd, 4)
    assert job.returncode == 2, job.stderr
    lines = [line for line in job.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "rank 2:" in lines[0], job.stderr
    assert "Traceback" not in job.stderr


def test_a_stopped_rank_is_aborted_by_the_timeout(tmp_path):
    script = _script(tmp_path, STOP_IN_RANK.format(function="stage_forward", rank=1))
    job = launch(4, [script, "verify", "--timeout", "5", *PLAN], timeout=ABORT_WITHIN,
                 capture=True)
    assert job.returncode != 0
    assert "timed out after 5 s (--timeout 5); aborting the job" in job.stderr
    assert "# OK" not in job.stdout


def test_timeout_and_limits_are_checked_by_the_ranks():
    job = launch(2, ["-m", "ringpipe.mpi", "verify", "--timeout", "-1"],
                 timeout=ABORT_WITHIN, capture=True)
    assert job.returncode == 2 and job.stderr.count("--timeout must be") == 1
    job = launch(2, ["-m", "ringpipe.mpi", "allreduce", "--max-bytes", str(8 << 30)],
                 timeout=ABORT_WITHIN, capture=True)
    assert job.returncode == 2 and job.stderr.count("exceeds the limit max_memory") == 1


# ---- the launcher dies: nothing of its job may survive it

SLEEPER = textwrap.dedent("""
    import os, sys, time
    from mpi4py import MPI
    from ringpipe.mpi.watchdog import Watchdog
    dog = Watchdog.start(MPI.COMM_WORLD, 0)
    path = os.path.join(sys.argv[1], f"rank{MPI.COMM_WORLD.Get_rank()}")
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(path + ".tmp", path)
    time.sleep(600)
""")

LAUNCHER = textwrap.dedent("""
    import sys
    from ringpipe.mpi.launch import launch
    launch(2, sys.argv[1:])
""")


def _descendants(root: int) -> set[int]:
    """Every live process below ``root`` (read from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_until(condition, seconds: float = ABORT_WITHIN) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_a_killed_launcher_leaves_no_process_behind(tmp_path, sig):
    script = _script(tmp_path, SLEEPER)
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    proc = subprocess.Popen([sys.executable, str(launcher), script, str(tmp_path)],
                            stderr=subprocess.PIPE, text=True)
    job: set[int] = set()
    try:
        assert _wait_until(lambda: all((tmp_path / f"rank{r}").exists() for r in range(2)))
        job = _descendants(proc.pid)
        ranks = {int((tmp_path / f"rank{r}").read_text()) for r in range(2)}
        assert ranks <= job
        proc.send_signal(sig)
        proc.wait(timeout=ABORT_WITHIN)
        assert _wait_until(lambda: not any(_alive(pid) for pid in job)), \
            [open(f"/proc/{p}/cmdline").read() for p in job if _alive(p)]
    finally:
        proc.kill()
        proc.wait()
        for pid in filter(_alive, job):  # clean up after a failure
            os.kill(pid, signal.SIGKILL)
    if sig != signal.SIGKILL:
        assert proc.returncode == 128 + sig
        assert f"{signal.Signals(sig).name} received; stopped the MPI job" in proc.stderr.read()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_on_the_cli_stops_the_job_with_one_line():
    """SIGINT on ``ringpipe verify --backend mpi`` (a job of ~40 s): exit 130, one line,
    no traceback, no process left."""
    argv = ["verify", "--backend", "mpi", "--tp", "2", "--pp", "2", "--microbatches", "8",
            "--layers", "8", "--hidden", "256", "--heads", "4", "--seq", "64"]
    # a shell starts background jobs with SIGINT ignored, and Python then installs no
    # handler: give the CLI the default disposition, as an interactive terminal does
    proc = subprocess.Popen([sys.executable, "-m", "ringpipe", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    job: set[int] = set()
    try:
        assert _wait_until(lambda: len(_descendants(proc.pid)) >= 5)  # mpiexec + 4 ranks
        job = _descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=ABORT_WITHIN)
        assert proc.returncode == 130
        assert err == "error: interrupted\n"
        assert _wait_until(lambda: not any(_alive(pid) for pid in job))
    finally:
        proc.kill()
        proc.wait()
        for pid in filter(_alive, job):
            os.kill(pid, signal.SIGKILL)


def test_watchdog_settings():
    from ringpipe.environment import DEFAULT_TIMEOUT, LAUNCHER_VAR, Environment
    from ringpipe.mpi.watchdog import _local_launcher, launcher_id

    def default_timeout(environ):
        return Environment.read(environ).timeout

    here = launcher_id()
    assert mpiexec_environment(2, {})[LAUNCHER_VAR] == here
    assert Environment.read({LAUNCHER_VAR: here}).launcher == here
    assert _local_launcher(here) == os.getpid()
    assert _local_launcher(f"{os.getpid()}@not-{here.split('@')[1]}") is None  # other node
    assert _local_launcher("") is None and _local_launcher("1@x") is None
    assert default_timeout({}) == DEFAULT_TIMEOUT == 900
    assert default_timeout({"RINGPIPE_TIMEOUT": "30"}) == 30
    with pytest.raises(ValueError, match="RINGPIPE_TIMEOUT"):
        default_timeout({"RINGPIPE_TIMEOUT": "soon"})
    with pytest.raises(ValueError, match=">= 0"):
        default_timeout({"RINGPIPE_TIMEOUT": "-5"})


def test_a_failing_rank_prints_one_line_and_the_traceback_only_in_debug(tmp_path):
    script = _script(tmp_path, RAISE_IN_RANK.format(function="stage_forward", rank=1))
    quiet = launch(2, [script, "verify", "--pp", "2", "--microbatches", "2", "--layers", "2",
                       "--hidden", "16", "--heads", "4", "--seq", "4"],
                   timeout=ABORT_WITHIN, capture=True,
                   env={**os.environ, "RINGPIPE_DEBUG": "0"})
    assert "rank 1: RuntimeError: injected failure on purpose" in quiet.stderr
    assert "Traceback" not in quiet.stderr
    loud = launch(2, [script, "verify", "--pp", "2", "--microbatches", "2", "--layers", "2",
                      "--hidden", "16", "--heads", "4", "--seq", "4"],
                  timeout=ABORT_WITHIN, capture=True, env={**os.environ, "RINGPIPE_DEBUG": "1"})
    assert "rank 1: RuntimeError: injected failure on purpose" in loud.stderr
    assert "Traceback" in loud.stderr


def test_ctrl_c_on_a_rank_reads_interrupted():
    assert format_rank_error(3, KeyboardInterrupt()) == "rank 3: interrupted"
    assert format_rank_error(0, ValueError("bad")) == "rank 0: ValueError: bad"
