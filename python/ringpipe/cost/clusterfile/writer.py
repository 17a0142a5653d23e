"""A small TOML writer for cluster files (the standard library reads TOML, it does not
write it): nested tables, arrays of tables, and values that are strings, booleans,
numbers or (nested) lists of them — what :mod:`ringpipe.measure.calibrate` produces."""

from __future__ import annotations

import json
import math
import numbers
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        if not math.isfinite(v):
            raise ValueError(f"TOML cannot hold the non-finite number {v}")
        return repr(float(v))
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write a {type(v).__name__} to TOML")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and bool(v) and all(isinstance(x, dict) for x in v)


def _emit(data: dict[str, Any], prefix: str, out: list[str]) -> None:
    for key, v in data.items():
        if not isinstance(v, dict) and not _is_table_array(v):
            out.append(f"{key} = {_value(v)}")
    for key, v in data.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(v, dict):
            out.append(f"\n[{name}]")
            _emit(v, name, out)
        elif _is_table_array(v):
            for item in v:
                out.append(f"\n[[{name}]]")
                _emit(item, name, out)


def dumps(data: dict[str, Any], header: str = "") -> str:
    """``data`` as TOML text, with ``header`` lines as comments on top."""
    out = [f"# {line}" if line else "#" for line in header.splitlines()]
    _emit(data, "", out)
    return "\n".join(out) + "\n"
