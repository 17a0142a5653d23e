"""Ranks of a ProcessGroup that disagree on ``segment_bytes`` (which shapes the step
table's messages) are refused by the agreement check, alike on every rank, naming the
rank and both values -- they used to post different messages and hang."""

from __future__ import annotations

import textwrap

import pytest

from ringpipe.mpi.launch import launch

pytestmark = pytest.mark.mpi

#: A hang is a failure: the job is killed after this many seconds.
WITHIN = 60

MISMATCH = textwrap.dedent("""
    import sys
    import numpy as np
    from mpi4py import MPI
    from ringpipe.mpi import ProcessGroup
    from ringpipe.mpi.agreement import CollectiveError

    rank = MPI.COMM_WORLD.Get_rank()
    segment = {segments}[rank]
    group = ProcessGroup(MPI.COMM_WORLD, segment_bytes=segment, name="world")
    data = np.arange({count}, dtype=np.float64)
    try:
        group.all_reduce(data, algorithm="{algorithm}")
    except CollectiveError as exc:
        print(f"rank {{rank}} refused: {{exc}}", flush=True)
        sys.exit(0)
    print(f"rank {{rank}} reduced", flush=True)
""")


@pytest.mark.parametrize("segments,count,algorithm", [
    ((1 << 20, 4096), 200_000, "ring"),  # the reproducer: 1 MiB against 4 KiB
    ((4096, 0), 300, "tree"),  # a small message: staged on one rank, segmented on the other
])
def test_ranks_with_different_segment_bytes_are_refused(tmp_path, segments, count,
                                                         algorithm):
    script = tmp_path / "job.py"
    script.write_text(MISMATCH.format(segments=list(segments), count=count,
                                      algorithm=algorithm))
    job = launch(2, [str(script)], timeout=WITHIN, capture=True)
    assert job.returncode == 0, job.stderr
    want = (f"all_reduce (world): rank 1: segment_bytes={segments[1]} but rank 0 has "
            f"segment_bytes={segments[0]}")
    # both ranks refuse alike (their lines may reach mpiexec's stdout interleaved)
    assert job.stdout.count("refused: ") == 2 and job.stdout.count(want) == 2, job.stdout
    assert "reduced" not in job.stdout


def test_ranks_that_agree_on_segment_bytes_still_reduce(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(MISMATCH.format(segments=[4096, 4096], count=200_000,
                                      algorithm="ring"))
    job = launch(2, [str(script)], timeout=WITHIN, capture=True)
    assert job.returncode == 0 and job.stdout.count("reduced") == 2, job.stderr
