"""Each tool's documented settings, as data, and the one renderer of an emission.

``data/<tool>.toml`` lists every flag or key ``--emit <tool>`` may print, with the value
it takes (``"int"``, ``"int-or-none"``, ``"bool"``, ``"switch"``: a flag without a value,
``"str"``, or a list of the accepted values), the tool's version and the URL of the
source that defines them, the launcher line and the ringpipe schedules the tool runs.
:func:`check` refuses any setting not in the file (or with a value it does not accept),
so nothing reaches the user that the tool's documentation does not spell that way.

Four styles of output (``style`` in the file): ``flags`` (``--name value`` after the
launcher), ``overrides`` (``key=value``), ``toml`` (``[section]`` tables) and ``json``
(one nested object; ``PipelineModule.*`` keys, set in code, become a comment).
"""

from __future__ import annotations

import functools
import json
import shlex
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

__all__ = ["Emission", "ToolData", "check", "comment", "render", "tool_data"]

DATA = Path(__file__).with_name("data")


@dataclass(frozen=True)
class ToolData:
    """One tool's file (module docstring)."""

    name: str
    tool: str
    version: str
    source: str
    style: str
    launcher: str
    schedules: tuple[str, ...]
    flags: dict[str, Any]


@functools.cache
def tool_data(name: str) -> ToolData:
    """``data/<name>.toml``, parsed."""
    raw = tomllib.loads((DATA / f"{name}.toml").read_text(encoding="utf-8"))
    return ToolData(name, raw["tool"], raw["version"], raw["source"], raw["style"],
                    raw["launcher"], tuple(raw["schedules"]), dict(raw["flags"]))


@dataclass(frozen=True)
class Emission:
    """A plan as one tool's settings: ``(name, value)`` pairs in order (``True`` for a
    switch), the launcher's fields, and comment lines (what differs, what to fill in)."""

    tool: str
    settings: tuple[tuple[str, Any], ...]
    fields: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def _accepts(kind: Any, value: Any) -> bool:  # noqa: ANN401 - a TOML value
    if isinstance(kind, list):
        return value in kind
    return {"int": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
            "int-or-none": value is None or (isinstance(value, int) and value >= 1),
            "bool": isinstance(value, bool), "switch": value is True,
            "str": isinstance(value, str) and value != ""}[kind]


def check(emission: Emission) -> None:
    """ValueError naming the first setting ``data/<tool>.toml`` does not document, or
    whose value it does not accept."""
    data = tool_data(emission.tool)
    for name, value in emission.settings:
        if name not in data.flags:
            raise ValueError(f"--emit {emission.tool}: {name} is not among {data.tool}'s "
                             f"documented settings ({data.source})")
        if not _accepts(data.flags[name], value):
            raise ValueError(f"--emit {emission.tool}: {name}={value!r} is not a value "
                             f"{data.tool} accepts ({data.flags[name]})")


def comment(text: str, width: int = 100) -> str:
    """``text`` as ``#`` comment lines of at most ``width`` columns (a URL stays whole,
    a number stays with its unit)."""
    glued = text.replace(" s/step", "\u00a0s/step").replace(" GB/s", "\u00a0GB/s")
    return textwrap.fill(glued, width, initial_indent="# ", subsequent_indent="#   ",
                         break_long_words=False, break_on_hyphens=False).replace("\u00a0", " ")


def _value(value: Any) -> str:  # noqa: ANN401
    """A value as one shell word (quoted when it holds ``|``, ``*``, blanks, ...)."""
    return shlex.quote("None" if value is None else str(value))


def render(emission: Emission) -> str:
    """The emission as the tool reads it (after :func:`check`), with its source cited."""
    check(emission)
    data = tool_data(emission.tool)
    head = [comment(f"{data.tool} {data.version}: settings as documented in {data.source}"),
            *(comment(note) for note in emission.notes)]
    launcher = data.launcher.format(**emission.fields)
    body = [(n, v) for n, v in emission.settings if not n.startswith("PipelineModule.")]
    if data.style == "flags":
        args = [n if v is True else f"{n} {_value(v)}" for n, v in body]
        return "\n".join([*head, " \\\n    ".join([launcher, *args])])
    if data.style == "overrides":
        args = [f"{n}={_value(v)}" for n, v in body]
        return "\n".join([*head, " \\\n    ".join([launcher, *args])])
    if data.style == "toml":
        lines = [*head, f"# run: {launcher}"]
        for section in dict.fromkeys(n.split(".", 1)[0] for n, _ in body):
            lines += ["", f"[{section}]"]
            lines += [f"{n.split('.', 1)[1]} = {json.dumps(v)}" for n, v in body
                      if n.split(".", 1)[0] == section]
        return "\n".join(lines)
    nested: dict[str, Any] = {}
    for name, value in body:
        *path, leaf = name.split(".")
        node = nested
        for key in path:
            node = node.setdefault(key, {})
        node[leaf] = value
    code = [f"{n.split('.', 1)[1]}={_value(v)}" for n, v in emission.settings
            if n.startswith("PipelineModule.")]
    extra = [f"# in code: PipelineModule(layers, {', '.join(code)})"] if code else []
    return "\n".join([*head, *extra, f"# run: {launcher}", json.dumps(nested, indent=2)])
