"""Chrome trace (trace-event JSON) of a simulated schedule, for Perfetto or chrome://tracing.

Each rank is one track (``tid``) of one process; each action is a complete event
(``"ph": "X"``) with ``ts`` and ``dur`` in microseconds, its kind as category and
stage / micro-batch in ``args``; each half of an overlapped pair is an event of its own
whose ``args.overlap`` is the pair's text, e.g. ``(0F7;7B3)OVERLAP_F_B``. Format: the
Trace Event Format document (Google, "Trace Event Format", the ``X`` and ``M`` phases).
"""

from __future__ import annotations

import json

from ringpipe.schedules.simulate import SimulationResult


def chrome_trace(result: SimulationResult, *, us_per_unit: float = 1000.0) -> dict:
    """The trace as a dict; one simulated time unit lasts ``us_per_unit`` microseconds."""
    if not us_per_unit > 0:
        raise ValueError(f"us_per_unit: must be > 0, got {us_per_unit!r}")
    schedule = result.schedule
    events: list[dict] = [
        {
            "name": "process_name",
            "ph": "M",
            "pid": 0,
            "tid": 0,
            "args": {
                "name": f"{schedule.name} p={schedule.num_ranks} "
                f"m={schedule.num_microbatches} v={schedule.chunks_per_rank}"
            },
        }
    ]
    for rank, line in enumerate(result.timelines):
        events.append(
            {
                "name": "thread_name",
                "ph": "M",
                "pid": 0,
                "tid": rank,
                "args": {"name": f"rank {rank}"},
            }
        )
        events.append(
            {
                "name": "thread_sort_index",
                "ph": "M",
                "pid": 0,
                "tid": rank,
                "args": {"sort_index": rank},
            }
        )
        for timed in line:
            action = timed.action
            events.append(
                {
                    "name": str(action),
                    "cat": action.kind.name,
                    "ph": "X",
                    "pid": 0,
                    "tid": rank,
                    "ts": float(timed.start) * us_per_unit,
                    "dur": float(timed.end - timed.start) * us_per_unit,
                    "args": {"stage": action.stage, "microbatch": action.microbatch,
                             **({"overlap": str(timed.pair)} if timed.pair else {})},
                }
            )
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def chrome_trace_json(result: SimulationResult, *, us_per_unit: float = 1000.0) -> str:
    """:func:`chrome_trace` serialised as JSON text."""
    return json.dumps(chrome_trace(result, us_per_unit=us_per_unit))
