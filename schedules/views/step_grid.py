"""The rank x step grid: each rank's action list laid out by position, with marks.

Validation errors print it with the failing step of each rank bracketed, like
PyTorch pipelining's dry-run report; ``window`` keeps long schedules readable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ringpipe.schedules.actions import Action
from ringpipe.schedules.schedule import Schedule

IDLE = "."
#: Per-rank action lists (``None`` = idle slot), as in :attr:`Schedule.actions`.
Rows = Sequence[Sequence[Action | None]]


def _step_columns(length: int, steps: Iterable[int], window: int | None) -> list[int | None]:
    if window is None:
        return list(range(length))
    keep = sorted(
        {c for s in steps for c in range(max(0, s - window), min(length, s + window + 1))}
    )
    if not keep:
        keep = list(range(min(length, 2 * window + 1)))
    columns: list[int | None] = []
    for c in keep:
        if columns and columns[-1] is not None and c != columns[-1] + 1:
            columns.append(None)  # gap marker
        columns.append(c)
    if keep and keep[0] > 0:
        columns.insert(0, None)
    if keep and keep[-1] < length - 1:
        columns.append(None)
    return columns


def format_step_grid(
    schedule: Schedule | Rows, marks: Iterable[tuple[int, int]] = (), window: int | None = 8
) -> str:
    """The rank x step grid of ``schedule`` with each (rank, step) in ``marks`` bracketed.

    ``schedule`` may also be bare per-rank rows (a CSV that is not a valid
    :class:`Schedule`). With ``window`` set, only the steps within ``window`` of a
    marked step are shown (``...`` stands for the rest), so errors in long
    schedules stay readable.
    """
    rows = schedule.actions if isinstance(schedule, Schedule) else schedule
    marked = set(marks)
    length = max((len(row) for row in rows), default=0)
    columns = _step_columns(length, (s for _, s in marked), window)

    def cell(rank: int, step: int | None) -> str:
        if step is None:
            return "..."
        row = rows[rank]
        text = "" if step >= len(row) else (IDLE if row[step] is None else str(row[step]))
        return f"[{text}]" if (rank, step) in marked else f" {text} "

    table = [[cell(r, c) for c in columns] for r in range(len(rows))]
    header = ["..." if c is None else f" {c} " for c in columns]
    width = max([len(x) for row in table for x in row] + [len(h) for h in header] + [1])
    label = len(f"rank {max(len(rows) - 1, 0)}")
    lines = ["step".ljust(label) + " |" + "".join(h.rjust(width) for h in header)]
    for r, row in enumerate(table):
        lines.append(f"rank {r}".ljust(label) + " |" + "".join(x.rjust(width) for x in row))
    return "\n".join(lines)
