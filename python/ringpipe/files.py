"""The one safe reader of the files a user names: cluster files, hostfiles, CSV schedules.

Every command that reads a file the user names (``plan --cluster-file``, ``verify
--cluster-file``, ``verify --backend mpi --hostfile``, ``schedule --from-csv``) opens it
through :func:`read_text` (or :func:`read_bytes`), so every such file is accepted or
refused the same way, quickly, and never blocks:

* the path is opened with ``O_NONBLOCK`` (an ``open`` of a FIFO with no writer would
  otherwise wait forever) and checked with ``fstat`` before a byte is read: a
  directory, a FIFO, a socket, a character device (``/dev/zero``, ``/dev/stdin`` on a
  terminal) or a block device is refused;
* a file larger than the caller's ``max_bytes`` is refused from its size, and reading
  stops at ``max_bytes + 1`` bytes for a file that grows while it is read;
* :func:`read_text` decodes UTF-8 (a leading byte-order mark dropped) and refuses text
  that is not UTF-8 or holds a NUL byte (a binary file).

Each refusal is a ValueError of one line that names the file (:func:`display`: control
characters escaped, so a path with a newline still gives one line) and what it was
meant to be (``what``: "cluster file", "hostfile", ...).
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["decode_text", "display", "read_bytes", "read_text"]

_BOM = "\ufeff"
_CHUNK = 1 << 20


def display(path: object) -> str:
    """``path`` as one printable line: characters that are not printable (newlines,
    other control characters, lone surrogates from undecodable bytes) are escaped as
    Python writes them (``\\n``, ``\\x1b``, ``\\udcff``)."""
    text = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _why(exc: OSError) -> str:
    if exc.errno == errno.EISDIR:
        return "it is a directory"
    return (exc.strerror or type(exc).__name__).lower()


def _check_path(path: object, what: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what}: expected a path, got {type(path).__name__}")
    name = os.fspath(path)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    if not name:
        raise ValueError(f"{what}: the path is empty")
    if "\0" in name:
        raise ValueError(f"{display(name)}: cannot read the {what}: the path contains a "
                         "NUL character")
    return name


def read_bytes(path: str | os.PathLike[str], what: str, max_bytes: int,
               label: str | None = None) -> bytes:
    """The bytes of the regular file ``path`` (module docstring); ValueError naming the
    file and ``what`` it is when it cannot be opened, is not a regular file, or holds
    more than ``max_bytes`` bytes. ``label`` starts each message (default: the path as
    :func:`display` writes it; e.g. ``"--hostfile hosts.txt"`` to name the flag too)."""
    name = _check_path(path, what)
    shown = display(name) if label is None else label
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ValueError(f"{shown}: cannot read the {what}: {_why(exc)}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{shown}: cannot read the {what}: it is "
                             f"{_kind(info.st_mode)}, not a regular file")
        if info.st_size > max_bytes:
            raise ValueError(f"{shown}: the {what} is {info.st_size} bytes; a {what} is "
                             f"at most {max_bytes} bytes")
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise ValueError(f"{shown}: cannot read the {what}: {_why(exc)}") from None
    finally:
        os.close(fd)
    if total > max_bytes:  # grew while being read
        raise ValueError(f"{shown}: the {what} is over {max_bytes} bytes")
    return b"".join(chunks)


def decode_text(raw: bytes, what: str, shown: str, expected: str = "text") -> str:
    """``raw`` as UTF-8 text, a leading byte-order mark dropped; ValueError starting with
    ``shown`` when it is not UTF-8 or holds a NUL byte (for bytes read elsewhere, e.g.
    standard input; :func:`read_text` reads a file and decodes it with this)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{shown}: the {what} is not UTF-8 text (byte {exc.start}: "
                         f"{exc.reason}); expected {expected}") from None
    if "\0" in text:
        raise ValueError(f"{shown}: the {what} contains NUL bytes (byte "
                         f"{raw.index(0)}): a binary file, not {expected}")
    return text.removeprefix(_BOM)


def read_text(path: str | os.PathLike[str], what: str, max_bytes: int,
              expected: str = "text", label: str | None = None) -> str:
    """The UTF-8 text of the regular file ``path``, a leading byte-order mark dropped;
    as :func:`read_bytes`, and ValueError when it is not UTF-8 or holds a NUL byte
    (``expected`` names what the file should hold, for the message)."""
    raw = read_bytes(path, what, max_bytes, label)
    shown = display(os.fspath(path)) if label is None else label
    return decode_text(raw, what, shown, expected)
