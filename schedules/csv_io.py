"""CSV form of a schedule, the layout PyTorch's ``torch.distributed.pipelining`` reads and writes.

One row per rank, one action per cell in execution order, an empty cell for an
idle slot. The file carries neither the placement nor m, so :func:`schedule_from_csv`
infers them: each stage lives on the rank whose row names it, and m is one more
than the largest micro-batch index.
"""

from __future__ import annotations

import csv
import io
import os

from .actions import Action, Schedule, infer_placement


def schedule_to_csv(schedule: Schedule) -> str:
    """The CSV text of ``schedule`` (lossless, idle slots included)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in schedule.actions:
        writer.writerow(["" if a is None else str(a) for a in row])
    return buffer.getvalue()


def schedule_from_csv(text: str, *, name: str = "csv") -> Schedule:
    """Parse CSV text into a :class:`Schedule` (placement and m inferred).

    Raises ValueError naming the row and column of a cell that is not an action.
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    rows: list[tuple[Action | None, ...]] = []
    cache: dict[str, Action] = {}
    for line_no, cells in enumerate(csv.reader(io.StringIO(text))):
        row: list[Action | None] = []
        for col, cell in enumerate(cells):
            cell = cell.strip()
            if not cell:
                row.append(None)
                continue
            action = cache.get(cell)
            if action is None:
                try:
                    action = cache[cell] = Action.parse(cell)
                except ValueError as exc:
                    raise ValueError(
                        f"csv row {line_no} (rank {line_no}), column {col}: {exc}"
                    ) from None
            row.append(action)
        rows.append(tuple(row))
    while rows and not rows[-1]:
        rows.pop()  # trailing blank lines
    if not rows:
        raise ValueError("csv: no rows; expected one row per rank")
    placement = infer_placement(rows)
    used = {a.microbatch for row in rows for a in row if a is not None}
    num_microbatches = 1 + max(used)
    if len(used) != num_microbatches:
        missing = next(i for i, mb in enumerate(sorted(used)) if i != mb)
        raise ValueError(f"csv: micro-batch indices must be 0..m-1 with none missing; the "
                         f"largest is {num_microbatches - 1} but {missing} never appears")
    if len(placement) < len(rows):
        raise ValueError(
            f"csv: {len(rows)} rank rows but only {len(placement)} stages; every rank needs a stage"
        )
    return Schedule(name, placement, tuple(rows), num_microbatches)


def save_csv(schedule: Schedule, path: str | os.PathLike[str]) -> None:
    """Write ``schedule`` to ``path`` in CSV form."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        handle.write(schedule_to_csv(schedule))


def load_csv(path: str | os.PathLike[str]) -> Schedule:
    """Read a CSV schedule; its name is the file name without extension."""
    with open(path, newline="", encoding="utf-8") as handle:
        text = handle.read()
    return schedule_from_csv(text, name=os.path.splitext(os.path.basename(path))[0])
