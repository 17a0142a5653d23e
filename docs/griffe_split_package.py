"""Griffe extension for the API pages (``mkdocs.yml`` loads it; it is not a page).

Two things the docstrings of ``ringpipe`` need before mkdocstrings renders them:

* ``pyproject.toml`` maps ``ringpipe`` to ``python/ringpipe`` but ``ringpipe.kernels``
  and ``ringpipe.schedules`` to the top-level ``kernels/`` and ``schedules/`` folders.
  Griffe reads ``ringpipe`` from ``python/`` (``paths`` in ``mkdocs.yml``) and never sees
  those folders, so this extension loads each one as a sub-package of ``ringpipe`` once
  the package is loaded. The folders come from ``[tool.setuptools.package-dir]``: a new
  entry there is picked up without editing this file.
* The docstrings cross-reference with Sphinx roles (``:func:`simulate```); Markdown
  has no such syntax, so each role is rewritten as inline code (``simulate``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe
import tomllib

ROOT = Path(__file__).resolve().parents[1]

#: ``:func:`name```, ``:py:class:`~a.b.C```, ``:mod:`.sub```: a Sphinx role and its target.
ROLE = re.compile(r":(?:py:)?[a-z]+:`(?P<target>[^`]+)`")


def split_subpackages(root: Path = ROOT) -> dict[str, Path]:
    """``{"kernels": <root>/kernels, ...}``: direct sub-packages of ``ringpipe`` that
    live outside ``python/ringpipe``."""
    meta = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    package_dir = meta["tool"]["setuptools"]["package-dir"]
    found = {}
    for name, folder in package_dir.items():
        parts = name.split(".")
        if len(parts) == 2 and parts[0] == "ringpipe":
            found[parts[1]] = root / folder
    return found


def _role_as_code(match: re.Match) -> str:
    target = match.group("target")
    if target.startswith("~"):  # Sphinx shows only the last component
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target.lstrip('.')}`"


def roles_as_code(text: str) -> str:
    """Rewrite every Sphinx role in ``text`` as inline code."""
    return ROLE.sub(_role_as_code, text)


def _rewrite_docstrings(obj: griffe.Object) -> None:
    if obj.docstring is not None:
        obj.docstring.value = roles_as_code(obj.docstring.value)
    for member in obj.members.values():
        if not member.is_alias:
            _rewrite_docstrings(member)


class SplitPackage(griffe.Extension):
    """Attach ``kernels/`` and ``schedules/`` as ``ringpipe.kernels`` and
    ``ringpipe.schedules``, then turn Sphinx roles into inline code."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader,
                   **kwargs: Any) -> None:
        if pkg.name != "ringpipe":
            return
        for name, folder in split_subpackages().items():
            if name in pkg.members and pkg.members[name].is_module:
                continue  # already there (an installed wheel has them in place)
            # Visiting with the right parent gives every object its real path
            # (ringpipe.kernels.steps.StepTable), so relative imports resolve.
            module = loader._load_module(name, folder / "__init__.py", submodules=True,
                                         parent=pkg)
            pkg.set_member(name, module)
            loader.expand_exports(module)
            loader.expand_wildcards(module, external=False)
        _rewrite_docstrings(pkg)
