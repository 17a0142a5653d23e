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

from ringpipe.schedules.actions import (
    COMM_KINDS,
    COMPUTE_KINDS,
    Action,
    ActionKind,
    infer_placement,
    interleaved_placement,
    one_chunk_placement,
    overlap_f_b,
    v_shape_placement,
)
from ringpipe.schedules.comms import add_communication
from ringpipe.schedules.csv_io import load_csv, save_csv, schedule_from_csv, schedule_to_csv
from ringpipe.schedules.errors import ScheduleError
from ringpipe.schedules.generators.decode import InferenceTiming, decode, inference_timing, prefill
from ringpipe.schedules.generators.dualpipev import dualpipev
from ringpipe.schedules.generators.gpipe import gpipe
from ringpipe.schedules.generators.interleaved import interleaved_one_f_one_b
from ringpipe.schedules.generators.one_f_one_b import one_f_one_b
from ringpipe.schedules.generators.zero_bubble import zb_h1
from ringpipe.schedules.generators.zero_bubble_v import zb_v
from ringpipe.schedules.registry import (
    SCHEDULES,
    ScheduleSpec,
    generate,
    resolve_chunks,
    schedule_spec,
)
from ringpipe.schedules.schedule import Schedule
from ringpipe.schedules.simulate import CostModel, SimulationResult, TimedAction, simulate
from ringpipe.schedules.synthesis import SynthesisReport, synthesis_report, synthesize
from ringpipe.schedules.validate import (
    SEND_MODES,
    ExecutionOrder,
    check_complete,
    dry_run,
    execution_order,
    validate,
)
from ringpipe.schedules.views.chrome import chrome_trace, chrome_trace_json
from ringpipe.schedules.views.step_grid import format_step_grid
from ringpipe.schedules.views.summary import summary
from ringpipe.schedules.views.svg import render_svg
from ringpipe.schedules.views.text import format_time_grid

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
    "InferenceTiming",
    "ScheduleError",
    "ScheduleSpec",
    "SimulationResult",
    "SynthesisReport",
    "TimedAction",
    "add_communication",
    "check_complete",
    "chrome_trace",
    "chrome_trace_json",
    "decode",
    "dry_run",
    "dualpipev",
    "execution_order",
    "format_step_grid",
    "format_time_grid",
    "generate",
    "gpipe",
    "infer_placement",
    "inference_timing",
    "interleaved_one_f_one_b",
    "interleaved_placement",
    "load_csv",
    "one_chunk_placement",
    "one_f_one_b",
    "overlap_f_b",
    "prefill",
    "render_svg",
    "resolve_chunks",
    "save_csv",
    "schedule_from_csv",
    "schedule_spec",
    "schedule_to_csv",
    "simulate",
    "summary",
    "synthesis_report",
    "synthesize",
    "v_shape_placement",
    "validate",
    "zb_h1",
    "zb_v",
]
