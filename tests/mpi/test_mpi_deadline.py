"""The deadline covers the whole MPI job: a rank stopped (SIGSTOP) at any point of
``ringpipe verify --backend mpi`` -- before ``MPI_Init``, during its work, after it,
inside ``MPI_Finalize`` -- cannot hang the job past ``--timeout``.

Rank 1 stops itself at the chosen point (:data:`STOPPER`, which runs the ranks' own
program); the command line runs in a subprocess whose launcher starts that program
instead of ``python -m ringpipe.mpi``. Each job must end, with exit status 1 and a line
saying it hit its deadline, within ``--timeout`` + 10 s (the subprocess is killed and
the test fails otherwise), and leave no process behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = [pytest.mark.mpi, pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]

TIMEOUT = 6
#: The job must be over within --timeout + this many seconds (the acceptance bound).
SLACK = 10

STOPPER = textwrap.dedent("""
    import os, signal, sys

    POINT = os.environ["RINGPIPE_TEST_STOP_AT"]
    RANK = int(os.environ.get("PMI_RANK", "-1"))  # Hydra's, known before MPI_Init

    def stop(where):
        if RANK == 1 and POINT == where:
            os.kill(os.getpid(), signal.SIGSTOP)

    stop("start")  # rank 0 then waits in MPI_Init
    import ringpipe.cli.ranks.main as ranks
    import ringpipe.runtime.training as runtime

    real_forward = runtime.stage_forward
    def forward(*args, **kwargs):
        stop("work")
        return real_forward(*args, **kwargs)
    runtime.stage_forward = forward

    real_guarded = ranks.run_guarded
    def guarded(job, debug=False):
        status = real_guarded(job, debug)
        stop("after")  # rank 0 then waits at the end of the job
        return status
    ranks.run_guarded = guarded

    real_load = ranks.load_mpi
    def load_mpi():
        mpi = real_load()
        real_finalize = mpi.Finalize
        def finalize():
            stop("finalize")  # rank 0 then waits inside MPI_Finalize, or has left
            real_finalize()
        mpi.Finalize = finalize
        return mpi
    ranks.load_mpi = load_mpi
    sys.exit(ranks.main(sys.argv[1:]))
""")

#: ``ringpipe verify`` whose launcher runs STOPPER (argv[1]) instead of ringpipe.mpi.
CLI = textwrap.dedent("""
    import sys
    import ringpipe.mpi.launch
    launch_module = sys.modules["ringpipe.mpi.launch"]
    real = launch_module.launch
    stopper = sys.argv.pop(1)

    def launch(nprocs, argv, **kwargs):
        assert argv[:2] == ["-m", "ringpipe.mpi"], argv
        return real(nprocs, [stopper, *argv[2:]], **kwargs)

    launch_module.launch = launch
    from ringpipe.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry))
    return found


@pytest.mark.parametrize("point", ["start", "work", "after", "finalize"])
def test_a_stopped_rank_cannot_outlast_the_timeout(tmp_path, point):
    stopper = tmp_path / "stopper.py"
    stopper.write_text(STOPPER)
    cli = tmp_path / "cli.py"
    cli.write_text(CLI)
    argv = [sys.executable, str(cli), str(stopper), "verify", "--backend", "mpi", "--pp",
            "2", "--microbatches", "4", "--timeout", str(TIMEOUT)]
    env = {**os.environ, "RINGPIPE_TEST_STOP_AT": point}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT + SLACK)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"stopped at {point!r}: the job outlived --timeout {TIMEOUT} + {SLACK} s")
    finally:
        deadline = time.monotonic() + 5  # mpiexec's group is killed as the CLI returns
        while _processes_mentioning(str(stopper)) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _processes_mentioning(str(stopper))
        for pid in left:  # clean up before failing
            os.kill(pid, signal.SIGKILL)
    assert not left, f"stopped at {point!r}: processes left behind: {left}"
    assert proc.returncode == 1, (point, proc.returncode, err)
    assert "Traceback" not in err
    assert "timed out after 6 s (--timeout 6)" in err or "--timeout of 6 s" in err, err
    assert "# OK" not in out or point in ("after", "finalize")  # the work may be done
