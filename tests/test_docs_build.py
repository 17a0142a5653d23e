"""The documentation site builds without a warning, and the README stays a short front
page whose links into ``docs/`` name pages that exist."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 250

#: ``[text](target)``, ``[text](<target with spaces>)`` and ``[text]: target`` links.
LINK = re.compile(r"\]\(\s*<([^>]+)>[^)]*\)"        # [text](<target>)
                  r"|\]\(\s*([^)\s]+)[^)]*\)"       # [text](target "title")
                  r"|^\s*\[[^\]]+\]:\s*<?([^\s>]+)", re.M)  # [text]: target


def _links(text: str) -> list[str]:
    return ["".join(groups) for groups in LINK.findall(text)]


def readme_links() -> list[str]:
    return _links(README.read_text())


def test_readme_is_at_most_250_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_readme_links_into_docs_name_existing_files():
    into_docs = []
    for link in readme_links():
        parts = urlsplit(link)
        if parts.scheme or parts.netloc or not parts.path:
            continue  # a web address, or an anchor in the README itself
        path = unquote(parts.path)
        if path.startswith("docs/") or path.startswith("./docs/"):
            into_docs.append(path)
            assert (ROOT / path).is_file(), f"README.md links to {link}, which does not exist"
    assert into_docs, "README.md has no links into docs/"


def test_link_pattern_finds_inline_and_reference_links():
    text = '[a](docs/x.md) [b](<docs/y z.md> "t") [c](#here)\n[d]: docs/w.md\n'
    assert _links(text) == ["docs/x.md", "docs/y z.md", "#here", "docs/w.md"]


def test_mkdocs_build_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.fail("mkdocs is part of the test extra (through docs) but is not installed")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # mkdocs-material's banner
    site = tmp_path / "site"
    done = subprocess.run(
        # No --quiet: it hides warnings from --strict, which then passes anyway.
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (site / "index.html").is_file()
    # The split sub-packages (kernels/, schedules/) made it into the API pages.
    kernels = (site / "api" / "kernels" / "index.html").read_text()
    assert "ringpipe.kernels.steps.StepTable" in kernels
    assert "ringpipe.schedules.simulate" in (site / "api" / "schedules" / "index.html").read_text()
