"""Node-aware placement: hostfiles, node detection, the cross-node TP refusal, the map.

The job tests name this machine as two "nodes" in a hostfile (``localhost`` and
``127.0.0.1``): MPICH's Hydra then starts both locally (``HYDRA_LAUNCHER=fork``) but
tells MPICH they are two hosts, so ``MPI_COMM_TYPE_SHARED`` splits the job in two.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ringpipe.mesh import Mesh
from ringpipe.mpi.placement import (
    NodeLayout,
    check_placement,
    format_placement,
    nodes_from_hostfile,
    read_hostfile,
)

SMALL = ["--microbatches", "2", "--layers", "4", "--hidden", "16", "--heads", "4", "--seq", "4"]


def test_read_hostfile(tmp_path):
    f = tmp_path / "hosts"
    f.write_text("# two nodes\nnode-a:4\n\nnode-b  # default one slot\n")
    assert read_hostfile(f) == [("node-a", 4), ("node-b", 1)]
    f.write_text("node-a:zero\n")
    with pytest.raises(ValueError, match="line 1: expected host"):
        read_hostfile(f)
    f.write_text("node-a slots=2\n")
    with pytest.raises(ValueError, match="Open MPI's form"):
        read_hostfile(f)
    f.write_text("node-a:\u00b2\n")
    with pytest.raises(ValueError, match="line 1"):
        read_hostfile(f)
    f.write_text("node-a:2 user=me\n")  # Hydra's per-host options pass through
    assert read_hostfile(f) == [("node-a", 2)]
    f.write_text("# nothing\n")
    with pytest.raises(ValueError, match="names no host"):
        read_hostfile(f)
    with pytest.raises(ValueError, match="cannot read"):
        read_hostfile(tmp_path / "missing")


def test_nodes_from_hostfile_fills_hosts_in_order_then_wraps():
    assert nodes_from_hostfile([("a", 2), ("b", 2)], 4) == (0, 0, 1, 1)
    assert nodes_from_hostfile([("a", 2), ("b", 1)], 5) == (0, 0, 1, 0, 0)
    # Hydra runs the third line's rank on host a again: the same machine as the first
    assert nodes_from_hostfile([("a", 1), ("b", 1), ("a", 1)], 3) == (0, 1, 0)
    with pytest.raises(ValueError, match="at least one host"):
        nodes_from_hostfile([], 2)
    with pytest.raises(ValueError, match="slots >= 1"):
        nodes_from_hostfile([("a", 0)], 2)


def test_tp_group_across_nodes_is_refused_unless_allowed():
    mesh = Mesh(tp=4)
    with pytest.raises(ValueError, match=r"spans nodes \[0, 1\].*--allow-cross-node-tp"):
        check_placement(mesh, (0, 0, 1, 1))
    warnings = check_placement(mesh, (0, 0, 1, 1), allow_cross_node_tp=True)
    assert len(warnings) == 1 and "spans nodes" in warnings[0]
    assert check_placement(Mesh(tp=2, pp=2), (0, 0, 1, 1)) == []  # TP inside, PP across
    with pytest.raises(ValueError, match="4 ranks placed"):
        check_placement(Mesh(tp=2), (0, 0, 1, 1))


def test_pp_across_nodes_with_room_for_more_tp_warns():
    assert check_placement(Mesh(pp=2, tp=1, dp=2), (0, 0, 1, 1)) == []  # PP inside nodes
    warnings = check_placement(Mesh(pp=2, tp=1, dp=2), (0, 1, 0, 1))
    assert len(warnings) == 1 and "crosses nodes" in warnings[0] and "larger --tp" in warnings[0]


def test_placement_map_lists_every_rank():
    text = format_placement(Mesh(pp=2, tp=2), NodeLayout((0, 0, 1, 1), 0, 2), [0, 1, 0, 1])
    assert text.splitlines()[0] == "# placement: 4 ranks on 2 node(s)"
    assert text.splitlines()[-1].split() == ["3", "1", "1", "(0,", "1,", "1)"]


def _two_nodes(tmp_path):
    hostfile = tmp_path / "two-nodes.txt"
    hostfile.write_text("localhost:2\n127.0.0.1:2\n")
    return str(hostfile)


def _cli(*args, timeout=120):
    env = {**os.environ, "HYDRA_LAUNCHER": "fork"}
    return subprocess.run([sys.executable, "-m", "ringpipe", "verify", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.mpi
def test_two_node_job_keeps_each_tp_group_on_one_node(tmp_path):
    job = _cli("--backend", "mpi", "--np", "4", "--hostfile", _two_nodes(tmp_path), "--tp",
               "2", "--pp", "2", "--verbose", *SMALL)
    assert job.returncode == 0, job.stdout + job.stderr
    lines = job.stdout.splitlines()
    assert lines[0] == "# placement: 4 ranks on 2 node(s)"
    nodes = [int(line.split()[1]) for line in lines[2:6]]
    assert nodes == [0, 0, 1, 1]
    doc = json.loads(_cli("--backend", "mpi", "--np", "4", "--hostfile", _two_nodes(tmp_path),
                          "--tp", "2", "--pp", "2", "--json", *SMALL).stdout)
    assert doc["nodes"] == 2 and doc["bitwise_inproc"] is True
    assert [p["node"] for p in doc["placement"]] == [0, 0, 1, 1]


@pytest.mark.mpi
def test_tp_across_two_nodes_is_refused_with_one_line(tmp_path):
    job = _cli("--backend", "mpi", "--np", "4", "--hostfile", _two_nodes(tmp_path), "--tp",
               "4", *SMALL)
    assert job.returncode == 2
    assert len(job.stderr.strip().splitlines()) == 1 and "spans nodes" in job.stderr
    assert "Traceback" not in job.stderr


@pytest.mark.mpi
def test_ranks_refuse_cross_node_tp_when_started_directly(tmp_path):
    """Under mpiexec (or srun) without ringpipe's CLI, the ranks detect nodes themselves."""
    from ringpipe.mpi.launch import launch

    job = launch(4, ["-m", "ringpipe.mpi", "verify", "--tp", "4", *SMALL], timeout=120,
                 capture=True, mpiexec_args=["-f", _two_nodes(tmp_path)],
                 env={**os.environ, "HYDRA_LAUNCHER": "fork"})
    assert job.returncode == 2 and "spans nodes [0, 1]" in job.stderr


def test_in_process_backends_refuse_mpi_only_flags():
    job = _cli("--backend", "numpy", "--device", "cupy")
    assert job.returncode == 2 and "--device cupy only applies to --backend mpi" in job.stderr


@pytest.mark.mpi
def test_cli_timeout_reaches_the_ranks():
    job = _cli("--backend", "mpi", "--np", "2", "--pp", "2", "--layers", "16", "--hidden",
               "128", "--seq", "32", "--microbatches", "16", "--timeout", "0.5", timeout=60)
    assert job.returncode != 0 and "timed out after 0.5 s" in job.stderr
    assert "Traceback" not in job.stderr
    bad = _cli("--backend", "mpi", "--np", "2", "--pp", "2", "--timeout", "-1")
    assert bad.returncode == 2 and "--timeout must be" in bad.stderr


@pytest.mark.mpi
def test_missing_gpu_extra_is_one_line_exit_2():
    pytest.importorskip("mpi4py")
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed: --device cupy would run")
    except ImportError:
        pass
    job = _cli("--backend", "mpi", "--np", "2", "--pp", "2", "--device", "cupy")
    assert job.returncode == 2 and "needs the cupy package" in job.stderr
    assert len(job.stderr.strip().splitlines()) == 1


@pytest.mark.mpi
def test_mpiexec_failing_on_a_passed_through_argument_is_one_line_exit_1():
    job = _cli("--backend", "mpi", "--np", "2", "--pp", "2", "--mpiexec-arg=--no-such-flag")
    assert job.returncode == 1 and "Traceback" not in job.stderr
    assert job.stderr.strip().splitlines()[-1].startswith(
        "error: ringpipe verify: the MPI job ended with status")
