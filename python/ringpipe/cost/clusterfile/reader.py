"""The one reader of cluster files: a path in, the parsed document (a dict) out.

Every command that takes ``--cluster-file`` (``plan``, ``verify`` in-process and under
MPI) and every loader in :mod:`ringpipe.cost.clusterfile.load` reads the file through
:func:`read_document`, so a file is accepted or refused the same way everywhere.

The format is decided by the suffix: ``.toml`` is TOML, ``.json`` is JSON; any other
name is JSON when its first non-blank character is ``{`` (a TOML document cannot start
with one) and TOML otherwise. A leading UTF-8 byte-order mark is dropped. Refused, with
a ValueError naming the path: what the one safe reader of input files refuses
(:mod:`ringpipe.files`: a missing or unreadable path; a directory, a FIFO, a device or a
socket, opened without blocking and then refused; a file over :data:`MAX_BYTES`; text
that is not UTF-8 or holds NUL bytes), an empty file, a syntax error (the
parser's message), a JSON key given twice (TOML refuses those itself), and a document
whose top level is not a table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import tomllib

from ringpipe.files import decode_text, display, read_text

__all__ = ["MAX_BYTES", "file_format", "parse_document", "read_document"]

#: Largest file read: a calibrated file with full measurement grids is a few hundred KB.
MAX_BYTES = 16 << 20


def file_format(path: str | os.PathLike[str], text: str) -> str:
    """``"toml"`` or ``"json"``: by suffix, else by the first non-blank character."""
    suffix = Path(path).suffix.lower()
    if suffix in (".toml", ".json"):
        return suffix[1:]
    return "json" if text.lstrip().startswith("{") else "toml"


def _text(name: str, path: str | os.PathLike[str]) -> str:
    """The file's text through the one safe reader (:func:`ringpipe.files.read_text`:
    opened without blocking, refused unless a regular UTF-8 file of at most
    :data:`MAX_BYTES`), refused when blank."""
    text = read_text(path, "cluster file", MAX_BYTES, "TOML or JSON")
    return _not_blank(name, text)


def _not_blank(name: str, text: str) -> str:
    if not text.strip():
        raise ValueError(f"{display(name)}: the cluster file is empty; expected TOML or JSON")
    return text


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _parse(name: str, fmt: str, text: str, guessed: bool) -> object:
    how = (f" (read as {fmt.upper()} from its first character; name the file .toml or "
           ".json to choose)") if guessed else ""
    try:
        if fmt == "toml":
            return tomllib.loads(text)
        return json.loads(text, object_pairs_hook=_unique_keys)
    except (tomllib.TOMLDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"{display(name)}: the cluster file does not parse as "
                         f"{fmt.upper()}{how}: {display(str(exc))}") from None
    except RecursionError:
        raise ValueError(f"{display(name)}: the cluster file does not parse as "
                         f"{fmt.upper()}{how}: nested too deeply") from None


def read_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed cluster file at ``path`` (module docstring); ValueError naming the
    path when it cannot be read or parsed. The document is not validated here:
    :func:`ringpipe.cost.clusterfile.load.read_cluster` does that."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"cluster file: expected a path, got {type(path).__name__}")
    name = os.fspath(path)
    return _document(name, _text(name, path), path)


def parse_document(name: str, raw: bytes,
                   path: str | os.PathLike[str] = "") -> dict[str, Any]:
    """The cluster file whose bytes are ``raw`` parsed, with the checks of
    :func:`read_document` (for bytes read elsewhere, e.g. standard input, at most
    :data:`MAX_BYTES`); ``name`` starts every message, ``path``'s suffix (if any) picks
    the format."""
    if len(raw) > MAX_BYTES:
        raise ValueError(f"{display(name)}: the cluster file is over {MAX_BYTES} bytes")
    text = decode_text(raw, "cluster file", display(name), "TOML or JSON")
    return _document(name, _not_blank(name, text), path)


def _document(name: str, text: str, path: str | os.PathLike[str]) -> dict[str, Any]:
    fmt = file_format(path, text)
    guessed = Path(path).suffix.lower() not in (".toml", ".json")
    data = _parse(name, fmt, text, guessed)
    if not isinstance(data, dict):
        raise ValueError(f"{display(name)}: the top level of the cluster file must be a table "
                         f"(a JSON object), got {type(data).__name__}")
    return data
