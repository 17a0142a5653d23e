"""The one reader of the published-measurement files in ``ringpipe/cost/published/data/``.

Every table of :mod:`ringpipe.cost.published` is a CSV file read by :func:`load_table`,
which returns its rows as instances of a frozen dataclass the caller names (one field
per column) together with the file's citation (:class:`Source`) and column descriptions
(:class:`Column`). There is no other parser of these files.

A file is UTF-8 text: first ``#`` metadata lines, then a CSV header, then one line per
row (no blank lines, no comments among the rows). Metadata lines are ``# key: value``;
a line starting ``#`` and two or more spaces continues the previous value; a bare ``#``
separates paragraphs. The keys:

* ``citation`` (required): authors, title, venue or publisher, year;
* ``short`` (required): a one-line label for tables and reports;
* ``section`` (required): the table or section of the source the rows come from;
* ``url``, ``measured`` (when the rows were measured): optional;
* ``note``: any number of remarks;
* ``column NAME [UNIT]: meaning`` (required for every column; ``[UNIT]`` optional).

Values are refused, with a ValueError naming the file, the line and the column, when
empty, padded with spaces, or not of the field's type: ``str`` (any non-empty text),
``int`` (digits, optional sign) and ``float`` (a finite decimal number; one written as
an integer stays an ``int``, as in Python and TOML). A ``float | None`` field declared
with :func:`absent_as` reads its token (e.g. ``OOM``) as None. Unknown metadata keys,
missing or unknown columns, a column without a description and a row with too few or
too many values are refused the same way.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Generic, TypeVar

__all__ = ["Column", "Source", "Table", "absent_as", "data_files", "load_table"]

#: The folder, inside this package, that holds the data files.
DATA_FOLDER = "data"
#: Suffix of a data file.
SUFFIX = ".csv"

_REQUIRED = ("citation", "short", "section")
_SINGLE = (*_REQUIRED, "url", "measured")
_KEYS = (*_SINGLE, "note", "column")
_ABSENT = "ringpipe.published.absent"
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_COLUMN = re.compile(r"column ([a-z_][a-z0-9_]*)(?: \[([^\]]+)\])?")

R = TypeVar("R")
_Metadata = tuple[dict[str, str], list[str], dict[str, tuple[str, str]]]


@dataclass(frozen=True)
class Column:
    """One column's description: its name, unit ("" when none) and meaning."""

    name: str
    unit: str
    meaning: str


@dataclass(frozen=True)
class Source:
    """Where a table's numbers come from."""

    citation: str
    short: str
    section: str
    url: str = ""
    measured: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table(Generic[R]):
    """A loaded file: its name, source, column descriptions (header order) and rows."""

    name: str
    source: Source
    columns: tuple[Column, ...]
    rows: tuple[R, ...]


def absent_as(token: str) -> Any:
    """A dataclass field (no default) whose column reads ``token`` as None."""
    return dataclasses.field(metadata={_ABSENT: token})


def data_files() -> tuple[str, ...]:
    """The names of the data files shipped with the package, sorted."""
    folder = resources.files(__package__).joinpath(DATA_FOLDER)
    return tuple(sorted(p.name for p in folder.iterdir()
                        if p.is_file() and p.name.endswith(SUFFIX)))


def _read(file: str | os.PathLike[str]) -> tuple[str, str]:
    """(the name errors use, the text) of a package data file or a path."""
    if isinstance(file, os.PathLike):
        name = os.fspath(file)
        try:
            data = Path(file).read_bytes()
        except OSError as exc:
            raise ValueError(f"{name}: cannot read the data file: {exc.strerror}") from None
    else:
        name = f"{DATA_FOLDER}/{file}"
        if not file.endswith(SUFFIX) or "/" in file or "\\" in file:
            raise ValueError(f"{file!r}: not a data file name (a '{SUFFIX}' name in "
                             f"{DATA_FOLDER}/; pass a pathlib.Path for a file elsewhere)")
        resource = resources.files(__package__).joinpath(DATA_FOLDER).joinpath(file)
        if not resource.is_file():
            raise ValueError(f"{name}: no such data file (have: {', '.join(data_files())})")
        data = resource.read_bytes()
    try:
        return name, data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _field_kinds(row: type) -> dict[str, tuple[type, str | None]]:
    """field name -> (int, float or str; the absent token or None)."""
    if not (dataclasses.is_dataclass(row) and row.__dataclass_params__.frozen):
        raise TypeError(f"{row!r}: rows are read into a frozen dataclass")
    hints = typing.get_type_hints(row)
    kinds: dict[str, tuple[type, str | None]] = {}
    for f in dataclasses.fields(row):
        if not f.init:
            continue
        hint, token = hints[f.name], f.metadata.get(_ABSENT)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            if len(args) != 1 or len(typing.get_args(hint)) != 2 or token is None:
                raise TypeError(f"{row.__name__}.{f.name}: an optional field is "
                                "'T | None' declared with absent_as(token)")
            hint = args[0]
        elif token is not None:
            raise TypeError(f"{row.__name__}.{f.name}: absent_as() needs a 'T | None' field")
        if hint not in (int, float, str):
            raise TypeError(f"{row.__name__}.{f.name}: a column is int, float or str")
        kinds[f.name] = (hint, token)
    return kinds


def _value(text: str, kind: type, token: str | None) -> object:
    """The value of one cell; ValueError with the reason (no location)."""
    if text == "":
        raise ValueError("missing value")
    if text != text.strip():
        raise ValueError(f"{text!r} has surrounding spaces")
    if token is not None and text == token:
        return None
    if kind is str:
        return text
    if _INT.fullmatch(text):
        return int(text)
    if kind is int:
        raise ValueError(f"{text!r} is not an integer")
    if text.lstrip("+-").lower() in ("nan", "inf", "infinity"):
        raise ValueError(f"{text!r} is not a finite number")
    if not _FLOAT.fullmatch(text):
        hint = "" if token is None else f" or {token!r}"
        raise ValueError(f"{text!r} is not a number{hint}")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _metadata(name: str, lines: list[tuple[int, str]]) -> _Metadata:
    """(single keys, notes, column name -> (unit, meaning)) of the leading ``#`` lines."""
    single: dict[str, str] = {}
    notes: list[str] = []
    columns: dict[str, tuple[str, str]] = {}
    entries: list[tuple[int, str, str]] = []  # (line, key, value), continuations joined
    for number, line in lines:
        if line == "#":
            continue
        if line.startswith("#  "):
            if not entries:
                raise ValueError(f"{name}: line {number}: a continuation with nothing before it")
            n, key, value = entries[-1]
            entries[-1] = (n, key, f"{value} {line[1:].strip()}")
            continue
        key, sep, value = line[2:].partition(": ") if line.startswith("# ") else ("", "", "")
        if not sep or not value.strip():
            raise ValueError(f"{name}: line {number}: expected '# key: value', got {line!r}")
        entries.append((number, key, value.strip()))
    for number, key, value in entries:
        word = key.split(" ", 1)[0]
        if word not in _KEYS or (word != "column" and key != word):
            raise ValueError(f"{name}: line {number}: unknown metadata key {key!r} "
                             f"(known: {', '.join(_KEYS)})")
        if word == "note":
            notes.append(value)
        elif word == "column":
            match = _COLUMN.fullmatch(key)
            if match is None:
                raise ValueError(f"{name}: line {number}: expected '# column NAME [UNIT]: "
                                 f"meaning', got {key!r}")
            if match[1] in columns:
                raise ValueError(f"{name}: line {number}: column {match[1]!r} described twice")
            columns[match[1]] = (match[2] or "", value)
        elif key in single:
            raise ValueError(f"{name}: line {number}: metadata key {key!r} given twice")
        else:
            single[key] = value
    missing = [k for k in _REQUIRED if k not in single]
    if missing:
        raise ValueError(f"{name}: the metadata lacks {', '.join(missing)} (every file "
                         "names its source)")
    return single, notes, columns


def _cells(name: str, number: int, line: str) -> list[str]:
    try:
        return next(csv.reader([line], strict=True))
    except csv.Error as exc:
        raise ValueError(f"{name}: line {number}: not a CSV line: {exc}") from None


def _header(name: str, number: int, line: str, kinds: dict[str, tuple[type, str | None]],
            described: dict[str, tuple[str, str]]) -> list[str]:
    header = _cells(name, number, line)
    seen = set()
    for col in header:
        if col in seen:
            raise ValueError(f"{name}: line {number}: column {col!r} given twice")
        seen.add(col)
        if col not in kinds:
            raise ValueError(f"{name}: line {number}: unknown column {col!r} (the columns "
                             f"are {', '.join(kinds)})")
        if col not in described:
            raise ValueError(f"{name}: line {number}: column {col!r} has no '# column' line")
    missing = [c for c in kinds if c not in seen]
    if missing:
        raise ValueError(f"{name}: line {number}: missing column(s) {', '.join(missing)}")
    extra = [c for c in described if c not in seen]
    if extra:
        raise ValueError(f"{name}: '# column' lines for columns not in the header: "
                         f"{', '.join(extra)}")
    return header


def load_table(file: str | os.PathLike[str], row: type[R]) -> Table[R]:
    """The rows of a data file as ``row`` instances, with its source (module docstring).

    ``file`` is the name of a file in the package's ``data/`` folder (a ``str``) or a
    path (a :class:`os.PathLike`, e.g. a :class:`pathlib.Path`). ValueError naming the
    file, the line and the column for anything malformed; TypeError when ``row`` is not
    a frozen dataclass of int, float and str fields.
    """
    kinds = _field_kinds(row)
    name, text = _read(file)
    lines = list(enumerate(text.splitlines(), start=1))
    start = next((i for i, (_, line) in enumerate(lines) if not line.startswith("#")), None)
    if start is None:
        raise ValueError(f"{name}: no CSV header after the metadata")
    single, notes, described = _metadata(name, lines[:start])
    header = _header(name, *lines[start], kinds, described)
    rows: list[R] = []
    for number, line in lines[start + 1:]:
        if line.strip() == "" or line.startswith("#"):
            what = "a blank line" if line.strip() == "" else "a comment"
            raise ValueError(f"{name}: line {number}: {what} among the rows")
        cells = _cells(name, number, line)
        if len(cells) != len(header):
            raise ValueError(f"{name}: line {number}: {len(cells)} values for "
                             f"{len(header)} columns")
        values = {}
        for col, cell in zip(header, cells, strict=True):
            try:
                values[col] = _value(cell, *kinds[col])
            except ValueError as exc:
                raise ValueError(f"{name}: line {number}, column {col!r}: {exc}") from None
        rows.append(row(**values))
    if not rows:
        raise ValueError(f"{name}: no rows after the header")
    columns = tuple(Column(c, *described[c]) for c in header)
    source = Source(single["citation"], single["short"], single["section"],
                    single.get("url", ""), single.get("measured", ""), tuple(notes))
    return Table(name, source, columns, tuple(rows))
