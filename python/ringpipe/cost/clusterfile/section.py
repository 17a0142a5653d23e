"""Validated access to one table of a cluster file, with messages that name the file and
the key as it is spelled there.

A :class:`Section` is a table of the parsed document (:mod:`ringpipe.cost.clusterfile.reader`)
plus where it is: the file (``source``) and its dotted path (``where``, e.g.
``measured.p2p.mpi``). Each accessor checks one value in the file's own units before any
conversion, so a message reads ``cluster.toml: measured.p2p.mpi.bandwidth_gbs must be >
0, got 0`` rather than naming a dataclass attribute or an SI value. Every number must be
finite (NaN and infinities are refused) and 0 or within :data:`MAGNITUDE` in the key's
unit, every integer at most :data:`MAX_INTEGER`, so that no value the file can hold
makes the cost model overflow, underflow to 0 or divide by 0 where it uses it; a value
that overflows when converted to SI units is refused too. Text must be printable (it is
printed: one line, encodable). :meth:`Section.only` refuses keys the format does not define.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ringpipe.validation import check_int, check_real

__all__ = ["Section"]

_REQUIRED: Any = object()

#: Every number in a cluster file is 0 or has a magnitude in this range, in the unit its
#: key names (GB/s, µs, TFLOP/s, GiB, a fraction, a GEMM dimension...): 1e-9 GB/s is one
#: byte a second, 1e9 µs a quarter of an hour per message. Beyond it nothing physical is
#: described, and the cost model's products and quotients would overflow or underflow
#: (``[kernels] saturation = 1e300`` made every GEMM's saturation 0, then a division).
MAGNITUDE = (1e-9, 1e9)
#: The range of a size in bytes (a message, a buffer): one byte to a petabyte.
BYTES_MAGNITUDE = (1.0, 1e15)
#: The largest integer a cluster file takes (GPUs per node, SMs, tiles, cores, ranks).
MAX_INTEGER = 10**9


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


@dataclass(frozen=True)
class Section:
    """One table of a cluster file: ``data``, the file ``source``, the dotted path
    ``where`` ("" for the top level)."""

    data: Mapping[str, Any]
    source: str = "cluster file"
    where: str = ""

    def name(self, key: str) -> str:
        """``key``'s full dotted name in the file."""
        return f"{self.where}.{key}" if self.where else key

    def label(self, key: str) -> str:
        """``source: dotted.key``, how every message about ``key`` starts."""
        return f"{self.source}: {self.name(key)}"

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def only(self, allowed: Collection[str]) -> None:
        """ValueError naming the first key not in ``allowed``, listing the valid ones."""
        unknown = sorted(str(k) for k in self.data if k not in allowed)
        if unknown:
            table = f"[{self.where}]" if self.where else "the top level"
            raise ValueError(f"{self.source}: unknown key {self.name(unknown[0])!r}; valid "
                             f"keys in {table}: {', '.join(sorted(allowed))}")

    def get(self, key: str, default: Any = _REQUIRED) -> Any:
        """The raw value; ``default`` when absent (ValueError 'missing' without one)."""
        if key in self.data:
            return self.data[key]
        if default is _REQUIRED:
            raise ValueError(f"{self.source}: missing {self.name(key)}")
        return default

    def real(self, key: str, default: Any = _REQUIRED, *, unit: float = 1.0,
             minimum: float | None = None, maximum: float | None = None,
             positive: bool = False, magnitude: tuple[float, float] = MAGNITUDE) -> Any:
        """``key`` as a finite number within the bounds (checked in the file's units),
        0 or within ``magnitude``, times ``unit``; ``default`` (returned as given) when
        absent."""
        if key not in self.data and default is not _REQUIRED:
            return default
        value = check_real(self.label(key), self.get(key), minimum, maximum,
                           positive=positive)
        self._magnitude(key, value, magnitude)
        return self._scaled(key, value, unit)

    def _magnitude(self, key: str, value: float,
                   magnitude: tuple[float, float] = MAGNITUDE) -> None:
        low, high = magnitude
        if value and not low <= abs(value) <= high:
            raise ValueError(f"{self.label(key)} = {value:g} is out of range: a cluster "
                             f"file's numbers are 0 or between {low:g} and {high:g} in "
                             "the unit the key names (bytes: 1 to 1e15)")

    def _scaled(self, key: str, value: float, unit: float) -> float:
        out = value * unit
        if not math.isfinite(out):
            raise ValueError(f"{self.label(key)} is too large, got {value:g}")
        if value > 0 and out == 0:
            raise ValueError(f"{self.label(key)} is too small, got {value:g}")
        return out

    def integer(self, key: str, default: Any = _REQUIRED, minimum: int | None = 1,
                maximum: int | None = MAX_INTEGER) -> Any:
        """``key`` as an int within the bounds; ``default`` when absent."""
        if key not in self.data and default is not _REQUIRED:
            return default
        return check_int(self.label(key), self.get(key), minimum, maximum)

    def text(self, key: str, default: Any = _REQUIRED,
             choices: Collection[str] | None = None) -> Any:
        """``key`` as a string of printable characters (one of ``choices`` when given);
        ``default`` when absent."""
        if key not in self.data and default is not _REQUIRED:
            return default
        value = self.get(key)
        if not isinstance(value, str):
            raise TypeError(f"{self.label(key)} must be a string, got {_kind(value)}")
        if not value.isprintable():  # it is printed: one line, encodable (no lone surrogate)
            raise ValueError(f"{self.label(key)} must be printable text (no control "
                             f"characters or lone surrogates), got {ascii(value)}")
        if choices is not None and value not in choices:
            raise ValueError(f"{self.label(key)} must be one of {', '.join(choices)}, "
                             f"got {value!r}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        """``key`` as a boolean; ``default`` when absent."""
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise TypeError(f"{self.label(key)} must be true or false, got {_kind(value)}")
        return value

    def table(self, key: str, required: bool = False) -> Section:
        """The sub-table ``key`` (empty when absent and not ``required``)."""
        value = self.get(key) if required else self.get(key, {})
        return self.wrap(value, self.name(key))

    def wrap(self, value: object, where: str) -> Section:
        """``value`` as a sub-table at ``where`` (TypeError if it is not a table)."""
        if not isinstance(value, Mapping):
            raise TypeError(f"{self.source}: {where} must be a table, got {_kind(value)}")
        return Section(value, self.source, where)

    def tables(self, key: str) -> list[Section]:
        """The array of tables ``key`` (``[[key]]`` in TOML), [] when absent."""
        rows = self.get(key, [])
        if not isinstance(rows, list):
            raise TypeError(f"{self.label(key)} must be an array of tables, got "
                            f"{_kind(rows)}")
        return [self.wrap(row, f"{self.name(key)}[{i}]") for i, row in enumerate(rows)]

    def array(self, key: str) -> list[Any]:
        """``key`` as an array (TypeError naming it otherwise)."""
        value = self.get(key)
        if not isinstance(value, list):
            raise TypeError(f"{self.label(key)} must be an array, got {_kind(value)}")
        return value

    def reals(self, key: str, *, unit: float = 1.0, minimum: float | None = None,
              positive: bool = False,
              magnitude: tuple[float, float] = MAGNITUDE) -> tuple[float, ...]:
        """``key`` as an array of finite numbers within the bounds and ``magnitude``, each
        times ``unit``; an element is named ``key[i]``."""
        out = []
        for i, value in enumerate(self.array(key)):
            name = f"{key}[{i}]"
            checked = check_real(self.label(name), value, minimum, positive=positive)
            self._magnitude(name, checked, magnitude)
            out.append(self._scaled(name, checked, unit))
        return tuple(out)
