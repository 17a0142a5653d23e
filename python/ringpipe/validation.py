"""The one argument validator for counts and sizes, used across ringpipe.

Every "must be an int >= n" check in the package goes through :func:`check_int`, so
the messages read the same everywhere: ``<name> must be an int, got str`` (TypeError)
and ``<name> must be >= 1, got 0`` (ValueError). ``bool`` is refused even though it is
an ``int`` subclass; NumPy integers are accepted and returned as Python ints.
"""

from __future__ import annotations

import numbers

__all__ = ["check_int"]


def check_int(name: str, value: object, minimum: int | None = 1,
              maximum: int | None = None) -> int:
    """Return ``value`` as a Python int if ``minimum <= value <= maximum``.

    ``name`` is the whole label the message starts with (e.g. ``"Plan: microbatches"``
    or ``"rank 3: root"``). ``None`` bounds are open. TypeError for a non-integer (bools
    and floats included), ValueError for one out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value
