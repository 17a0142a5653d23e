"""Hostfiles are read by the rules of the mpiexec that reads them: MPICH Hydra merges
consecutive lines naming one host (so two ``localhost`` lines, one per slot, are one
node with two slots) and fills the lines in order, wrapping; Open MPI reads ``host
slots=N``, adds up the slots of a host named twice and fills each host in turn. A node is
a host name: a TP group on one host is never refused as spanning nodes."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ringpipe.mpi.launch  # noqa: F401 - sys.modules["ringpipe.mpi.launch"] below
from ringpipe.cli import main
from ringpipe.mpi.launch import HOSTFILE_FLAGS, mpiexec_flavour
from ringpipe.mpi.placement import nodes_from_hostfile, read_hostfile

LAUNCH_MODULE = sys.modules["ringpipe.mpi.launch"]
SMALL = ["verify", "--backend", "mpi", "--microbatches", "2", "--layers", "4", "--hidden",
         "16", "--heads", "4", "--seq", "4"]


def _file(tmp_path, text: str) -> str:
    path = tmp_path / "hosts"
    path.write_text(text)
    return str(path)


def test_hydra_merges_consecutive_lines_of_one_host(tmp_path):
    hosts = read_hostfile(_file(tmp_path, "localhost\nlocalhost\n"))
    assert hosts == [("localhost", 1), ("localhost", 1)]
    assert nodes_from_hostfile(hosts, 2) == (0, 0)  # one node: this was (0, 1)
    assert nodes_from_hostfile([("a", 1), ("a", 1), ("b", 2)], 4) == (0, 0, 1, 1)
    # not consecutive: another entry, filled in turn, but the same machine
    assert nodes_from_hostfile([("a", 1), ("b", 1), ("a", 1)], 4) == (0, 1, 0, 0)
    assert nodes_from_hostfile([("a", 2), ("b", 1)], 7) == (0, 0, 1, 0, 0, 1, 0)


def test_open_mpi_reads_slots_and_adds_up_a_host_named_twice(tmp_path):
    hosts = read_hostfile(_file(tmp_path, "a slots=2\nb slots=2 max_slots=4  # rack 2\n"),
                          "openmpi")
    assert hosts == [("a", 2), ("b", 2)]
    assert nodes_from_hostfile(hosts, 4, "openmpi") == (0, 0, 1, 1)
    twice = [("a", 1), ("b", 1), ("a", 1)]
    assert nodes_from_hostfile(twice, 3, "openmpi") == (0, 0, 1)
    # oversubscribed: the extra ranks spread evenly, the first hosts one more
    assert nodes_from_hostfile([("a", 2), ("b", 1)], 6, "openmpi") == (0, 0, 0, 0, 1, 1)
    # no slots=: the node's core count decides, unknown before launch
    assert nodes_from_hostfile(read_hostfile(_file(tmp_path, "a\nb slots=2\n"), "openmpi"),
                               3, "openmpi") is None


@pytest.mark.parametrize("flavour,text,hint", [
    ("hydra", "a slots=2\n", "Open MPI's form, Hydra's is host:N"),
    ("openmpi", "a:2\n", "MPICH Hydra's form, Open MPI's is 'host slots=N'"),
    ("openmpi", "a slots=0\n", "expected host [slots=N] with N >= 1"),
    ("hydra", "a:0\n", "expected host[:slots] with slots >= 1"),
])
def test_each_flavour_refuses_the_other_syntax_naming_the_line(tmp_path, flavour, text, hint):
    with pytest.raises(ValueError, match="line 1") as info:
        read_hostfile(_file(tmp_path, text), flavour)
    assert hint in str(info.value) and str(info.value).startswith("--hostfile ")


def test_the_flavour_of_mpiexec_is_read_from_its_version(tmp_path):
    fake = tmp_path / "mpiexec"
    fake.write_text("#!/bin/sh\necho 'mpiexec (Open MPI) 4.1.6'\n")
    fake.chmod(0o755)
    assert mpiexec_flavour(str(fake)) == "openmpi"
    assert mpiexec_flavour() == "hydra"  # the mpich wheel's
    assert HOSTFILE_FLAGS == {"hydra": "-f", "openmpi": "--hostfile"}


@pytest.mark.parametrize("flavour,text,refused", [
    ("openmpi", "a slots=1\nb slots=1\n", True),
    ("openmpi", "a slots=2\n", False),
    ("hydra", "a\nb\n", True),
    ("hydra", "a\na\n", False),
])
def test_the_cli_checks_placement_by_the_flavours_rules(tmp_path, monkeypatch, capsys,
                                                       flavour, text, refused):
    calls = []

    def fake(nprocs, argv, **kwargs):
        calls.append(kwargs)
        return subprocess.CompletedProcess([], 0)

    monkeypatch.setattr(LAUNCH_MODULE, "launch", fake)
    monkeypatch.setattr(LAUNCH_MODULE, "mpiexec_flavour", lambda mpiexec=None: flavour)
    path = _file(tmp_path, text)
    status = main([*SMALL, "--tp", "2", "--hostfile", path])
    err = capsys.readouterr().err
    if refused:
        assert status == 2 and "spans nodes [0, 1]" in err and not calls
    else:
        assert status == 0, err
        assert calls[0]["mpiexec_args"][:2] == [HOSTFILE_FLAGS[flavour], path]


@pytest.mark.mpi
def test_two_localhost_lines_run_a_tp_group(tmp_path, capfd):
    """The reproducer: one line per slot, a common style; Hydra runs both ranks on one
    node, and so does the check."""
    path = _file(tmp_path, "localhost\nlocalhost\n")
    assert main([*SMALL, "--np", "2", "--tp", "2", "--hostfile", path, "--verbose"]) == 0
    out, err = capfd.readouterr()
    assert "spans nodes" not in err and "2 ranks on 1 node(s)" in out
