"""The README's examples run as written and print what the README shows; so do the
multi-node examples of docs/clusters.md (a hostfile and the ``srun`` line), on a
hostfile of two localhost "nodes" with the emulated GPU and a fake NCCL
(``tests/helpers/device_job.py``: there is no GPU here).

Printed output is compared line by line: a README block is the output's first lines,
``...`` standing for lines left out (or, ending a line, for the rest of that line), a
long line may be wrapped; floating-point error figures (which depend on the
BLAS) are compared as numbers of the same form, and so which gradients fill the rows of
the error table; everything else exactly.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import shlex
from pathlib import Path

import pytest

from ringpipe.cli import main

mpi_launch = importlib.import_module("ringpipe.mpi.launch")  # the module, not its function
ROOT = Path(__file__).resolve().parents[1]
HELPERS = ROOT / "tests" / "helpers"
FLOAT = re.compile(r"-?\d+\.\d{6,}(e[-+]\d+)?|-?\d\.\d+e[-+]\d+")
#: Which gradients have the largest rounding errors depends on the BLAS: any tensor name
#: may stand in a row of the error table.
TENSOR = re.compile(r"^layers\.\d+\.[\w.]+(?=\s+<float>)")


def _blocks(text: str) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", text, re.S)


def _commands(block: str) -> list[tuple[str, list[str]]]:
    """``$ command`` lines of a block (``\\`` continuations joined) and the lines shown
    after each."""
    out, lines = [], block.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("$ "):
            cmd = lines[i][2:]
            while cmd.endswith("\\"):
                i += 1
                cmd = cmd[:-1] + " " + lines[i].strip()
            shown = []
            while i + 1 < len(lines) and not lines[i + 1].startswith("$ "):
                i += 1
                shown.append(lines[i])
            out.append((cmd, shown))
        i += 1
    return out


def _norm(line: str) -> str:
    return TENSOR.sub("<tensor>", FLOAT.sub("<float>", line))


def _same(shown: list[str], printed: list[str]) -> None:
    """``shown`` is ``printed``'s first lines: ``...`` alone skips the rest, a line ending
    in `` ...`` is the start of the printed line, and consecutive shown lines may be one
    printed line wrapped."""
    i = j = 0
    while i < len(shown):
        line = shown[i]
        if line == "...":
            return
        assert j < len(printed), f"the README shows more than was printed: {line!r}"
        got = _norm(printed[j])
        if line.endswith(" ..."):
            assert got.startswith(_norm(line[:-4])), f"README: {line!r}\nprinted: {got!r}"
        elif _norm(line) != got:  # a printed line the README wraps over several
            k, joined = i, _norm(line)
            while got.startswith(joined) and joined != got and k + 1 < len(shown):
                k += 1
                joined += " " + _norm(shown[k].strip())
            assert joined == got, f"README: {line!r}\nprinted: {printed[j]!r}"
            i = k
        i, j = i + 1, j + 1


def _run(argv: list[str]) -> tuple[int, list[str]]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = main(argv)
    return status, buf.getvalue().splitlines()


README = (ROOT / "README.md").read_text()
RINGPIPE_EXAMPLES = [(cmd, shown) for block in _blocks(README)
                     for cmd, shown in _commands(block) if cmd.startswith("ringpipe ")]


def test_readme_python_example_prints_what_it_shows():
    blocks = _blocks(README)
    code = next(i for i, b in enumerate(blocks) if b.startswith("import numpy as np"))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(blocks[code], "README.md", "exec"), {})  # noqa: S102 - the example
    assert buf.getvalue().splitlines() == blocks[code + 1].splitlines()


def test_readme_shows_each_kind_of_command():
    assert {cmd.split()[1] for cmd, _ in RINGPIPE_EXAMPLES} >= {"verify", "plan"}


@pytest.mark.parametrize("cmd,shown", RINGPIPE_EXAMPLES, ids=[c for c, _ in RINGPIPE_EXAMPLES])
def test_readme_command_prints_what_it_shows(cmd, shown):
    status, printed = _run(shlex.split(cmd)[1:])
    assert status == 0
    _same(shown, printed)


CLUSTERS = (ROOT / "docs" / "clusters.md").read_text()


def _doc_command(prefix: str, containing: str = "") -> list[str]:
    """The docs' command line starting with ``prefix`` and holding ``containing``
    (continuations joined)."""
    for block in _blocks(CLUSTERS):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.removeprefix("$ ")
            if line.startswith(prefix) and containing in line:
                return shlex.split(line)
    raise AssertionError(f"docs/clusters.md lost its {prefix!r} example")


def _two_localhost_nodes(tmp_path: Path, slots: int) -> Path:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(f"localhost:{slots}\n127.0.0.1:{slots}\n")
    return hosts


def _device_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "HYDRA_LAUNCHER": "fork", "PYTHONPATH": str(HELPERS),
            "RINGPIPE_DEVICE_LOG": str(tmp_path / "device")}


def test_the_multi_node_examples_model_fits_their_tp(capsys):
    """The examples' --tp 8 --pp 2 with the default model (it stopped at "heads=4 is not
    divisible by tp=8"), here on in-process ranks."""
    assert main(["verify", "--backend", "numpy", "--tp", "8", "--pp", "2"]) == 0
    assert "# OK" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.mpi
def test_docs_hostfile_example_runs_as_written(tmp_path, monkeypatch, capfd):
    """``ringpipe verify --backend mpi --np 16 --hostfile hosts.txt --device cupy --tp 8
    --pp 2 --allreduce nccl --verbose`` as docs/clusters.md writes it (it failed with
    heads=4 is not divisible by tp=8), the ranks on the emulated GPU."""
    argv = _doc_command("ringpipe verify --backend mpi", "--hostfile")
    assert argv[argv.index("--hostfile") + 1] == "hosts.txt" and "--tp" in argv
    np_ = int(argv[argv.index("--np") + 1])
    hosts = _two_localhost_nodes(tmp_path, np_ // 2)
    argv[argv.index("--hostfile") + 1] = str(hosts)
    real = mpi_launch.launch

    def on_emulated_gpus(nprocs, rank_argv, **kw):  # the same ranks, device_job's GPU
        assert rank_argv[:3] == ["-m", "ringpipe.mpi", "verify"]
        return real(nprocs, [str(HELPERS / "device_job.py"), *rank_argv[2:]],
                    env=_device_env(tmp_path), **{**kw, "timeout": 600})  # emulated: slow

    monkeypatch.setattr(mpi_launch, "launch", on_emulated_gpus)
    assert main(argv[1:]) == 0
    out = capfd.readouterr().out  # the ranks print to the inherited stdout
    assert f"# placement: {np_} ranks on 2 node(s)" in out and "# OK" in out


@pytest.mark.slow
@pytest.mark.mpi
def test_docs_srun_example_runs_as_written(tmp_path):
    """The ``srun ... python -m ringpipe.mpi verify ...`` line: the same rank program,
    started by mpiexec on two localhost nodes (srun is not here), with 16 ranks as the
    ``#SBATCH`` line asks."""
    argv = _doc_command("srun ")
    rank_args = argv[argv.index("ringpipe.mpi") + 1:]
    assert rank_args[0] == "verify" and "--tp" in rank_args
    sbatch = re.search(r"--nodes=(\d+) --ntasks-per-node=(\d+)", CLUSTERS)
    nodes, per_node = int(sbatch.group(1)), int(sbatch.group(2))
    hosts = _two_localhost_nodes(tmp_path, per_node)
    job = mpi_launch.launch(nodes * per_node, [str(HELPERS / "device_job.py"), *rank_args],
                            timeout=600, capture=True, env=_device_env(tmp_path),
                            mpiexec_args=["-f", str(hosts)], local=False)
    assert job.returncode == 0, job.stdout + job.stderr
    assert "# OK" in job.stdout
