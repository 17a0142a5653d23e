"""CSV form of a schedule, the layout PyTorch's ``torch.distributed.pipelining`` reads and writes.

One row per rank, one action per cell in execution order, an empty cell for an
idle slot. The file carries neither the placement nor m, so :func:`schedule_from_csv`
infers them: each stage lives on the rank whose row names it, and m is one more
than the largest micro-batch index.

Two kinds of failure: a file that does not parse (a cell that is not an action,
no rows at all) raises a plain ValueError; rows that parse but do not form a
schedule (a stage on two ranks, gaps in the stage or micro-batch indices, a rank
row with no stage, such as a stray blank line) raise :class:`ScheduleError` with
the rank x step grid, as validation failures do.

Files are read through the one safe reader of input files (:mod:`ringpipe.files`) as
UTF-8, a leading byte-order mark (as spreadsheet programs write it) ignored; a FIFO, a
device, a directory, a file over the size limit, a file that is not UTF-8 text (binary
garbage), a NUL byte, or a cell over Python's csv field limit
(``csv.field_size_limit()``, 131072 characters) is a plain ValueError naming the file,
row and problem.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator

from ringpipe.files import display, read_text
from ringpipe.limits import DEFAULT_LIMITS
from ringpipe.schedules.actions import Action, infer_placement
from ringpipe.schedules.errors import ScheduleError
from ringpipe.schedules.schedule import Schedule


def schedule_to_csv(schedule: Schedule) -> str:
    """The CSV text of ``schedule`` (lossless, idle slots included)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in schedule.actions:
        writer.writerow(["" if a is None else str(a) for a in row])
    return buffer.getvalue()


def schedule_from_csv(text: str, *, name: str = "csv") -> Schedule:
    """Parse CSV text into a :class:`Schedule` (placement and m inferred).

    Raises ValueError naming the row and column of a cell that is not an action,
    or when there are no rows; :class:`ScheduleError` (a ValueError, with the grid)
    when the rows parse but do not form a schedule (module docstring).
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    rows: list[tuple[Action | None, ...]] = []
    cache: dict[str, Action] = {}
    for line_no, cells in enumerate(_rows(text.removeprefix("\ufeff"))):
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
    return _assemble(rows, name)


def _rows(text: str) -> Iterator[list[str]]:
    """``csv.reader`` over ``text``, its ``csv.Error`` (not a ValueError) turned into one."""
    reader = csv.reader(io.StringIO(text))
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            reason = str(exc)
            if "field limit" in reason:
                reason = (f"a cell is longer than the csv field limit of "
                          f"{csv.field_size_limit()} characters")
            raise ValueError(f"csv row {reader.line_num - 1}: {reason}") from None
        yield cells


def _split_stage(rows: list[tuple[Action | None, ...]]) -> list[tuple[int, int]]:
    """The first cells, on two ranks, of the first stage that runs on both (else [])."""
    first: dict[int, tuple[int, int]] = {}
    for rank, row in enumerate(rows):
        for step, action in enumerate(row):
            for part in () if action is None else action.parts:
                seen = first.setdefault(part.stage, (rank, step))
                if seen[0] != rank:
                    return [seen, (rank, step)]
    return []


def _assemble(rows: list[tuple[Action | None, ...]], name: str) -> Schedule:
    """The :class:`Schedule` of parsed ``rows``; ScheduleError (with the grid) if none fits."""
    try:
        placement = infer_placement(rows)
    except ValueError as exc:
        raise ScheduleError(str(exc), rows, _split_stage(rows)) from None
    used = {p.microbatch for row in rows for a in row if a is not None for p in a.parts}
    num_microbatches = 1 + max(used)
    if len(used) != num_microbatches:
        missing = next(i for i, mb in enumerate(sorted(used)) if i != mb)
        raise ScheduleError(
            f"csv: micro-batch indices must be 0..m-1 with none missing; the "
            f"largest is {num_microbatches - 1} but {missing} never appears",
            rows,
        )
    if len(placement) < len(rows):
        idle = sorted(set(range(len(rows))) - set(placement))
        raise ScheduleError(
            f"csv: {len(rows)} rank rows but only {len(placement)} stages; every rank needs "
            f"a stage, but none runs on rank{'s' * (len(idle) > 1)} "
            f"{', '.join(map(str, idle))} (a blank line?)",
            rows,
        )
    try:
        return Schedule(name, placement, tuple(rows), num_microbatches)
    except ValueError as exc:
        raise ScheduleError(str(exc), rows) from None


def _check_path(path: object) -> str:
    """``path`` as a str; TypeError for anything but a str or os.PathLike (an int would
    be taken as a file descriptor by ``open``)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def save_csv(schedule: Schedule, path: str | os.PathLike[str]) -> None:
    """Write ``schedule`` to ``path`` in CSV form (ValueError naming the path when it
    cannot be written)."""
    name = _check_path(path)
    try:
        with open(name, "w", newline="", encoding="utf-8") as handle:
            handle.write(schedule_to_csv(schedule))
    except OSError as exc:
        raise ValueError(f"{name}: cannot write the CSV: {exc.strerror or exc}") from None


#: Largest CSV schedule :func:`load_csv` reads by default: a schedule of
#: ``max_schedule_cells`` (stage, micro-batch) cells (:class:`ringpipe.limits.Limits`) has
#: at most 8 actions per cell of a few bytes each, well under 16 bytes.
CSV_BYTES_PER_CELL = 128


def load_csv(path: str | os.PathLike[str], max_bytes: int | None = None) -> Schedule:
    """Read a CSV schedule; its name is the file name without extension.

    The file goes through the one safe reader of input files
    (:func:`ringpipe.files.read_text`): a FIFO, a device or a directory is refused
    without blocking, a file over ``max_bytes`` (default: ``CSV_BYTES_PER_CELL`` times
    the default ``max_schedule_cells``) without reading it. ValueError naming the file
    when it is not UTF-8 text or does not parse (:class:`ScheduleError`, with its grid,
    when the rows form no schedule).
    """
    name = _check_path(path)
    limit = CSV_BYTES_PER_CELL * DEFAULT_LIMITS.max_schedule_cells if max_bytes is None \
        else max_bytes
    text = read_text(name, "CSV schedule", limit, "one row of actions per rank")
    try:
        return schedule_from_csv(text, name=os.path.splitext(os.path.basename(name))[0])
    except ScheduleError:
        raise
    except ValueError as exc:
        raise ValueError(f"{display(name)}: {exc}") from None
