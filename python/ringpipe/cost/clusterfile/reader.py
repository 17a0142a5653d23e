"""The one reader of cluster files: a path in, the parsed document (a dict) out.

Every command that takes ``--cluster-file`` (``plan``, ``verify`` in-process and under
MPI) and every loader in :mod:`ringpipe.cost.clusterfile.load` reads the file through
:func:`read_document`, so a file is accepted or refused the same way everywhere.

The format is decided by the suffix: ``.toml`` is TOML, ``.json`` is JSON; any other
name is JSON when its first non-blank character is ``{`` (a TOML document cannot start
with one) and TOML otherwise. A leading UTF-8 byte-order mark is dropped. Refused, with
a ValueError naming the path: a missing or unreadable path, a directory, a FIFO, device
or socket (opened without blocking, then refused), a file over :data:`MAX_BYTES`, an
empty file, text that is not UTF-8, NUL bytes (a binary file), a syntax error (the
parser's message), a JSON key given twice (TOML refuses those itself), and a document
whose top level is not a table.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

import tomllib

__all__ = ["MAX_BYTES", "file_format", "parse_document", "read_document", "read_text"]

#: Largest file read: a calibrated file with full measurement grids is a few hundred KB.
MAX_BYTES = 16 << 20

_BOM = "\ufeff"


def file_format(path: str | os.PathLike[str], text: str) -> str:
    """``"toml"`` or ``"json"``: by suffix, else by the first non-blank character."""
    suffix = Path(path).suffix.lower()
    if suffix in (".toml", ".json"):
        return suffix[1:]
    return "json" if text.lstrip().startswith("{") else "toml"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _why(exc: OSError) -> str:
    return "it is a directory" if exc.errno == errno.EISDIR else (
        exc.strerror or type(exc).__name__).lower()


def _read_bytes(name: str, path: str | os.PathLike[str], what: str = "cluster file") -> bytes:
    """The file's bytes; opened non-blocking and checked with fstat before reading, so
    a FIFO or device is refused instead of hanging the reader. ``what`` names the kind
    of file in messages."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ValueError(f"{name}: cannot read the {what}: {_why(exc)}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{name}: cannot read the {what}: it is "
                             f"{_kind(info.st_mode)}, not a regular file")
        if info.st_size > MAX_BYTES:
            raise ValueError(f"{name}: the {what} is {info.st_size} bytes; a {what} "
                             f"is at most {MAX_BYTES} bytes")
        chunks, total = [], 0
        while total <= MAX_BYTES:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise ValueError(f"{name}: cannot read the {what}: {_why(exc)}") from None
    finally:
        os.close(fd)
    if total > MAX_BYTES:  # grew while being read
        raise ValueError(f"{name}: the {what} is over {MAX_BYTES} bytes")
    return b"".join(chunks)


def read_text(path: str | os.PathLike[str], what: str) -> str:
    """The UTF-8 text of the file at ``path`` (another input file read as safely as a
    cluster file: regular files only, at most :data:`MAX_BYTES`, no NUL bytes); ValueError
    naming the path and ``what`` the file is (e.g. "nccl-tests log")."""
    name = os.fspath(path)
    raw = _read_bytes(name, path, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: the {what} is not UTF-8 text (byte {exc.start}: "
                         f"{exc.reason})") from None
    if "\0" in text:
        raise ValueError(f"{name}: the {what} contains NUL bytes (byte {raw.index(0)}): "
                         "a binary file")
    return text.removeprefix(_BOM)


def _decode(name: str, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: the cluster file is not UTF-8 text (byte {exc.start}: "
                         f"{exc.reason}); expected TOML or JSON") from None
    if "\0" in text:
        raise ValueError(f"{name}: the cluster file contains NUL bytes (byte "
                         f"{raw.index(0)}): a binary file, not TOML or JSON")
    text = text.removeprefix(_BOM)
    if not text.strip():
        raise ValueError(f"{name}: the cluster file is empty; expected TOML or JSON")
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
        raise ValueError(f"{name}: the cluster file does not parse as "
                         f"{fmt.upper()}{how}: {exc}") from None
    except RecursionError:
        raise ValueError(f"{name}: the cluster file does not parse as {fmt.upper()}{how}: "
                         "nested too deeply") from None


def read_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed cluster file at ``path`` (module docstring); ValueError naming the
    path when it cannot be read or parsed. The document is not validated here:
    :func:`ringpipe.cost.clusterfile.load.read_cluster` does that."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"cluster file: expected a path, got {type(path).__name__}")
    name = os.fspath(path)
    return parse_document(name, _read_bytes(name, path), path)


def parse_document(name: str, raw: bytes,
                   path: str | os.PathLike[str] = "") -> dict[str, Any]:
    """The cluster file whose bytes are ``raw`` parsed, with the checks of
    :func:`read_document` (for bytes read elsewhere, e.g. standard input, at most
    :data:`MAX_BYTES`); ``name`` starts every message, ``path``'s suffix (if any) picks
    the format."""
    if len(raw) > MAX_BYTES:
        raise ValueError(f"{name}: the cluster file is over {MAX_BYTES} bytes")
    text = _decode(name, raw)
    fmt = file_format(path, text)
    guessed = Path(path).suffix.lower() not in (".toml", ".json")
    data = _parse(name, fmt, text, guessed)
    if not isinstance(data, dict):
        raise ValueError(f"{name}: the top level of the cluster file must be a table "
                         f"(a JSON object), got {type(data).__name__}")
    return data
