"""Bounded caching of step tables, and the refusal of tables too large to hold.

A ring all-reduce over N ranks has 2N(N-1) transfers: about 50 bytes each once built
(five columns plus the per-chunk regrouping the executors use), so 2 MB at N = 100
and 100 MB at N = 1000. Tables are therefore cached in two bounded pools:

* up to :data:`SMALL_CACHE_ENTRIES` tables of at most :data:`SMALL_TRANSFERS`
  transfers each (the tables a training loop reuses every step; <= ~100 MB in all);
* the single most recent larger table.

A table of more than :data:`MAX_TRANSFERS` transfers (ring all-reduce beyond 1448
ranks; ~210 MB) is refused with a ValueError that names the limit and what to do
instead, before anything is allocated: in-process ranks are for testing and for a
machine's cores, not for thousands of virtual ranks.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, wraps
from typing import ParamSpec

from ringpipe.kernels.steps import StepTable

P = ParamSpec("P")

#: The largest table built, in transfers (ring all-reduce: N <= 1448).
MAX_TRANSFERS = 1 << 22
#: Tables up to this many transfers go to the small pool.
SMALL_TRANSFERS = 1 << 15
SMALL_CACHE_ENTRIES = 64


def bounded_table_cache(
    count: Callable[P, int], advice: str
) -> Callable[[Callable[P, StepTable]], Callable[P, StepTable]]:
    """Decorate a table generator: ``count(*args)`` checks the arguments and returns the
    number of transfers; the table is refused beyond :data:`MAX_TRANSFERS` (``advice``
    ends the message) and otherwise built once per pool entry (module docstring)."""

    def decorate(build: Callable[P, StepTable]) -> Callable[P, StepTable]:
        small = lru_cache(maxsize=SMALL_CACHE_ENTRIES)(build)
        large = lru_cache(maxsize=1)(build)

        @wraps(build)
        def table(*args: P.args, **kwargs: P.kwargs) -> StepTable:
            transfers = count(*args, **kwargs)
            if transfers > MAX_TRANSFERS:
                raise ValueError(
                    f"{build.__name__}{args}: the step table would have {transfers:,} "
                    f"transfers, more than the limit of {MAX_TRANSFERS:,} (about "
                    f"{MAX_TRANSFERS * 50 >> 20} MiB); {advice}")
            pool = small if transfers <= SMALL_TRANSFERS else large
            return pool(*args, **kwargs)

        table.cache_clear = lambda: (small.cache_clear(), large.cache_clear())  # type: ignore[attr-defined]
        return table

    return decorate
