"""Faults: a raising rank aborts the job loudly and fast; bad sizes are refused.

Every job runs under a subprocess timeout of :data:`ABORT_WITHIN` seconds (the whole
process group is killed and the test fails if it is exceeded), so a hang cannot pass.
"""

from __future__ import annotations

import textwrap

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
    from ringpipe.mpi.__main__ import main

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
