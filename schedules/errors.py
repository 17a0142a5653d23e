""":class:`ScheduleError`, the one error every schedule check raises.

It is a ValueError whose message is the reason followed by the rank x step grid
(:func:`~ringpipe.schedules.step_grid.format_step_grid`) with the failing steps
bracketed, like PyTorch pipelining's dry-run report.
"""

from __future__ import annotations

from collections.abc import Iterable

from .actions import Schedule
from .step_grid import format_step_grid


class ScheduleError(ValueError):
    """A schedule failed validation; ``grid`` shows where (failing steps bracketed)."""

    def __init__(
        self, reason: str, schedule: Schedule, marks: Iterable[tuple[int, int]] = ()
    ) -> None:
        self.reason = reason
        self.schedule = schedule
        self.marks = tuple(sorted(set(marks)))
        self.grid = format_step_grid(schedule, self.marks)
        super().__init__(f"{reason}\n{self.grid}")
