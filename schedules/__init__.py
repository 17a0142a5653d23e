"""``ringpipe.schedules``: pipeline schedules as data (IR, generators, checks, views).

A schedule is, per pipeline rank, an ordered list of :class:`Action` s such as
``0F3`` (stage 0, forward, micro-batch 3) in the text form of PyTorch's
``torch.distributed.pipelining``. Generators build them; :func:`add_communication`
adds SEND/RECV; :func:`validate` checks completeness, dependency order and
deadlock freedom (with blocking, batched sends by default); :func:`simulate`
times them; the views draw them.

>>> from ringpipe.schedules import generate, simulate
>>> simulate(generate("1f1b", 8, 32)).bubble_fraction
Fraction(7, 39)
"""

from .actions import (
    COMM_KINDS,
    COMPUTE_KINDS,
    Action,
    ActionKind,
    Schedule,
    infer_placement,
    interleaved_placement,
    one_chunk_placement,
    v_shape_placement,
)
from .comms import add_communication
from .csv_io import load_csv, save_csv, schedule_from_csv, schedule_to_csv
from .errors import ScheduleError
from .gpipe import gpipe
from .interleaved import interleaved_one_f_one_b
from .one_f_one_b import one_f_one_b
from .registry import SCHEDULES, ScheduleSpec, generate, resolve_chunks, schedule_spec
from .simulate import CostModel, SimulationResult, TimedAction, simulate
from .step_grid import format_step_grid
from .validate import (
    SEND_MODES,
    ExecutionOrder,
    check_complete,
    dry_run,
    execution_order,
    validate,
)
from .views_chrome import chrome_trace, chrome_trace_json
from .views_json import summary
from .views_svg import render_svg
from .views_text import format_time_grid
from .zero_bubble import zb_h1
from .zero_bubble_v import zb_v

__all__ = [
    "COMM_KINDS",
    "COMPUTE_KINDS",
    "SCHEDULES",
    "SEND_MODES",
    "Action",
    "ActionKind",
    "CostModel",
    "ExecutionOrder",
    "Schedule",
    "ScheduleError",
    "ScheduleSpec",
    "SimulationResult",
    "TimedAction",
    "add_communication",
    "check_complete",
    "chrome_trace",
    "chrome_trace_json",
    "dry_run",
    "execution_order",
    "format_step_grid",
    "format_time_grid",
    "generate",
    "gpipe",
    "infer_placement",
    "interleaved_one_f_one_b",
    "interleaved_placement",
    "load_csv",
    "one_chunk_placement",
    "one_f_one_b",
    "render_svg",
    "resolve_chunks",
    "save_csv",
    "schedule_from_csv",
    "schedule_spec",
    "schedule_to_csv",
    "simulate",
    "summary",
    "v_shape_placement",
    "validate",
    "zb_h1",
    "zb_v",
]
