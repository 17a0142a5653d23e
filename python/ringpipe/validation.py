"""The one argument validator for counts, sizes and real quantities, used across ringpipe.

Every "must be an int >= n" check in the package goes through :func:`check_int`, and
every "must be a finite number in a range" check through :func:`check_real`, so the
messages read the same everywhere: ``<name> must be an int, got str`` (TypeError) and
``<name> must be >= 1, got 0`` (ValueError). ``bool`` is refused even though it is an
``int`` subclass; NumPy integers and floats are accepted and returned as Python values.
"""

from __future__ import annotations

import numbers

__all__ = ["check_int", "check_real"]


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


def check_real(name: str, value: object, minimum: float | None = None,
               maximum: float | None = None, *, positive: bool = False) -> float:
    """Return ``value`` as a float if it is a finite real number within the bounds.

    ``minimum``/``maximum`` are inclusive; ``positive`` also requires ``value > 0``.
    TypeError for a non-number (bools included), ValueError for NaN, infinities or a
    value out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:  # an int too large for a float
        raise ValueError(f"{name} must be finite, got an int of {value.bit_length()} bits") \
            from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value:g}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum:g}, got {value:g}")
    return value
