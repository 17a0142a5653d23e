"""Project hygiene: the README quick start, CI script, extras, lint, import cost."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def quickstart_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quickstart:begin -->(.*?)<!-- quickstart:end -->", text, re.S)
    assert block, "README lost its quick-start markers"
    return [line for line in block.group(1).splitlines() if line.startswith("python ")]


def test_readme_quick_start_is_two_commands():
    install_demo, install_test = quickstart_commands()
    assert "ringpipe demo" in install_demo
    assert '".[test]"' in install_test and "pytest" in install_test


def test_ci_runs_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "quickstart:begin" in ci and "venv" in ci and '"$rc" -eq 5' in ci


def test_extras_and_dependencies():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(re.split(r"[<>=]", d)[0] for d in meta["dependencies"]) == ["numba", "numpy"]
    extras = meta["optional-dependencies"]
    assert {"test", "mpi", "gpu", "plot"} <= set(extras)
    assert {"pytest", "pytest-benchmark", "hypothesis"} <= {
        re.split(r"[<>=]", d)[0] for d in extras["test"]}
    assert meta["scripts"]["ringpipe"] == "ringpipe.cli:main"


def test_import_needs_no_optional_package():
    code = ("import sys, ringpipe; bad = [m for m in ('mpi4py', 'cupy', 'matplotlib', "
            "'numba.cuda') if m in sys.modules]; print(bad); assert not bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_check_passes():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is part of the test extra but is not installed")
    done = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_package_folder_is_installed():
    """A sub-package missing from pyproject's ``packages`` imports from a checkout but not
    from an installed wheel."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    roots = {"ringpipe": ROOT / "python" / "ringpipe", "ringpipe.kernels": ROOT / "kernels",
             "ringpipe.schedules": ROOT / "schedules"}
    found = set()
    for name, folder in roots.items():
        for init in folder.rglob("__init__.py"):
            parts = init.parent.relative_to(folder).parts
            found.add(".".join([name, *parts]))
    assert found == listed
