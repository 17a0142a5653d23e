"""Upper bounds on the work one request may ask for: :class:`Limits`, passed explicitly.

A typo such as ``--stages 10000 --microbatches 100000`` would otherwise run for minutes
and end in a ``MemoryError``. Whatever can be asked for absurd work estimates it before
it starts and calls :meth:`Limits.require`, which refuses an estimate over a limit with
a ValueError naming the limit and how to raise it. The command line's per-command
estimates are :mod:`ringpipe.cli.limits`.

The defaults fit a laptop. ``RINGPIPE_LIMITS``, a comma-separated list of
``name=value`` (sizes take ``K``/``M``/``G`` binary suffixes), e.g.
``RINGPIPE_LIMITS=max_ranks=4096,max_memory=16G``, raises them: the command line reads
it (:mod:`ringpipe.environment`, the one reader of the environment) and hands the
resulting :class:`Limits` down. MPI ranks inherit the variable, so they apply the same
limits.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "LIMITS_VAR", "Limits", "parse_size"]

#: The environment variable that raises the limits (read by :mod:`ringpipe.environment`).
LIMITS_VAR = "RINGPIPE_LIMITS"

_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True)
class Limits:
    """The bounds work is checked against (defaults in the field list)."""

    #: ranks of one job: ``demo --ranks``, ``verify`` dp·pp·tp, MPI ``--np``
    max_ranks: int = 1024
    #: pipeline stages p·v of a schedule or plan
    max_stages: int = 1024
    #: micro-batches of a schedule or plan
    max_microbatches: int = 100_000
    #: (stage, micro-batch) pairs p·v·m of one schedule: ~7 s and ~0.8 GB per 500 000
    max_schedule_cells: int = 500_000
    #: model layers of ``verify``
    max_layers: int = 10_000
    #: estimated bytes one process holds at once
    max_memory: int = 4 << 30
    #: ``plan --nodes``, or the ``nodes`` of ``plan --cluster-file`` without it
    max_nodes: int = 1_000_000
    #: timed repetitions of one measurement: ``demo --iters``, the MPI all-reduce table's
    #: ``--iters`` × ``--reps``
    max_iterations: int = 10_000

    @classmethod
    def parse(cls, text: str) -> Limits:
        """The defaults, overridden by ``text`` in ``RINGPIPE_LIMITS``' form
        (ValueError naming the variable if malformed)."""
        text = text.strip()
        if not text:
            return cls()
        names = {f.name for f in dataclasses.fields(cls)}
        changes: dict[str, int] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, value = item.partition("=")
            name = name.strip()
            if not sep or name not in names:
                raise ValueError(f"{LIMITS_VAR}: expected name=value with name one of "
                                 f"{', '.join(sorted(names))}, got {item!r}")
            changes[name] = parse_size(f"{LIMITS_VAR} {name}", value)
        return dataclasses.replace(cls(), **changes)

    def require(self, name: str, what: str, value: int) -> None:
        """ValueError if ``value`` (described by ``what``) exceeds the limit ``name``."""
        limit = getattr(self, name)
        if value > limit:
            raise ValueError(f"{what} = {value} exceeds the limit {name}={limit}; if you "
                             f"mean it, raise the limit: {LIMITS_VAR}={name}={value}")


#: The defaults, for functions that take ``limits`` and are called without them.
DEFAULT_LIMITS = Limits()


def parse_size(name: str, text: str) -> int:
    """``4096``, ``4K``, ``16M``, ``1G`` (binary multiples) as a non-negative int."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = _UNITS.get(t[-1:], 1)
    digits = t[:-1] if t[-1:] in _UNITS else t
    if not (digits.isascii() and digits.isdigit()):  # not '²', which isdigit() accepts
        raise ValueError(f"{name}: not a size: {text!r} (e.g. 4096, 64K, 16M, 1G)")
    return int(digits) * mult
