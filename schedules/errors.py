""":class:`ScheduleError`, the one error every schedule check raises.

It is a ValueError whose message is the reason followed by the rank x step grid
(:func:`~ringpipe.schedules.views.step_grid.format_step_grid`) with the failing steps
bracketed, like PyTorch pipelining's dry-run report. A CSV whose rows parse but
do not form a :class:`~ringpipe.schedules.actions.Schedule` (a stage on two ranks,
gaps in the stage or micro-batch indices, a rank with no stage) fails the same
way: the error then carries the rows alone, and ``schedule`` is None.
"""

from __future__ import annotations

from collections.abc import Iterable

from ringpipe.schedules.schedule import Schedule
from ringpipe.schedules.views.step_grid import Rows, format_step_grid


class ScheduleError(ValueError):
    """A schedule failed validation; ``grid`` shows where (failing steps bracketed).

    ``schedule`` is the failing :class:`Schedule`, or None when only its per-rank
    rows exist (they did not form one); ``actions`` holds the rows either way.
    """

    def __init__(
        self, reason: str, schedule: Schedule | Rows, marks: Iterable[tuple[int, int]] = ()
    ) -> None:
        self.reason = reason
        self.schedule = schedule if isinstance(schedule, Schedule) else None
        self.actions = (
            schedule.actions if isinstance(schedule, Schedule) else tuple(map(tuple, schedule))
        )
        self.marks = tuple(sorted(set(marks)))
        self.grid = format_step_grid(self.actions, self.marks)
        super().__init__(f"{reason}\n{self.grid}")
