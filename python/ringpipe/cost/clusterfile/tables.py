"""A cluster file's ``[[collectives]]`` rows: measured collective times by size.

::

    [[collectives]]                  # one row per (collective, ranks, nodes)
    collective = "all_reduce"        # all_reduce, all_gather, reduce_scatter,
                                     # all_to_all or send_recv
    ranks = 16
    nodes = 2                        # 1 <= nodes <= ranks
    source = "all_reduce_perf.log"   # optional: where the numbers came from
    sizes = [8, 16, 32, ...]         # bytes, nccl-tests' size column, increasing
    time_us = [25.1, 25.3, ...]      # one per size

``ringpipe calibrate --from-nccl-tests`` writes them; the planner prefers them over the
α-β links (:mod:`ringpipe.cost.hardware.measured`). Wrong types, unknown keys, sizes
that do not increase, counts that differ, and two rows for the same (collective,
ranks, nodes) are refused naming the file and the key.
"""

from __future__ import annotations

from ringpipe.cost.clusterfile.section import BYTES_MAGNITUDE, Section
from ringpipe.cost.hardware.gpu import MICROSECOND
from ringpipe.cost.hardware.measured import MEASURED_COLLECTIVES, MeasuredCollective

__all__ = ["read_collectives"]

_KEYS = ("collective", "ranks", "nodes", "source", "sizes", "time_us")


def _row(t: Section) -> MeasuredCollective:
    t.only(_KEYS)
    collective = t.text("collective", choices=MEASURED_COLLECTIVES)
    ranks = t.integer("ranks")
    nodes = t.integer("nodes", 1, maximum=ranks)
    sizes = t.reals("sizes", positive=True, magnitude=BYTES_MAGNITUDE)
    times = t.reals("time_us", unit=MICROSECOND, positive=True)
    if not sizes or len(sizes) != len(times):
        raise ValueError(f"{t.source}: {t.name('sizes')} and {t.name('time_us')} must be "
                         f"non-empty arrays of equal length, got {len(sizes)} and "
                         f"{len(times)} entries")
    for i in range(1, len(sizes)):
        if sizes[i] <= sizes[i - 1]:
            raise ValueError(f"{t.label(f'sizes[{i}]')} must be larger than the size "
                             f"before it, got {sizes[i]:g} after {sizes[i - 1]:g}")
    return MeasuredCollective(collective, ranks, nodes, sizes, times, t.text("source", ""))


def read_collectives(top: Section) -> tuple[MeasuredCollective, ...]:
    """The checked ``[[collectives]]`` rows of the document ``top`` (module docstring)."""
    rows: list[MeasuredCollective] = []
    seen: dict[tuple[str, int, int], str] = {}
    for t in top.tables("collectives"):
        row = _row(t)
        key = (row.collective, row.ranks, row.nodes)
        if key in seen:
            raise ValueError(f"{t.source}: {t.where} repeats collective {key[0]!r} on "
                             f"{key[1]} ranks over {key[2]} node(s), already in {seen[key]}")
        seen[key] = t.where
        rows.append(row)
    return tuple(rows)
