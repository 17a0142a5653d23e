"""Other tools' names for ringpipe's schedules: the one table.

PyTorch's ``torch.distributed.pipelining`` names its schedules by class
(``Schedule1F1B``, ...; torchtitan's ``pipeline_parallel_schedule`` takes the same names
without ``Schedule``, case-insensitively, as PyTorch's ``get_schedule_class`` does).
:data:`PYTORCH_SCHEDULE_CLASSES` maps each to the registry name
(:data:`ringpipe.schedules.SCHEDULES`) of the schedule that places and orders the same
work; a schedule added to the registry adds one row here. Rows whose target is not
registered are ignored, so a row may name a schedule before it lands.

Source: PyTorch 2.7 ``torch.distributed.pipelining.schedules``
(https://pytorch.org/docs/stable/distributed.pipelining.html#pipeline-schedules).
``ScheduleInterleavedZeroBubble`` is PyTorch's zero-bubble schedule (ZB1P of Qi et al.)
looped over v stages per rank; with one stage per rank it is ringpipe's ``zb-h1``, which
takes no ``--stages-per-rank`` (asking for v > 1 is refused by the registry).
"""

from __future__ import annotations

from types import MappingProxyType

from ringpipe.schedules.registry import INFERENCE_SCHEDULES, SCHEDULES

__all__ = ["PYTORCH_SCHEDULE_CLASSES", "canonical_schedule", "schedule_aliases"]

#: PyTorch schedule class -> ringpipe registry name (module docstring).
PYTORCH_SCHEDULE_CLASSES = MappingProxyType({
    "ScheduleGPipe": "gpipe",
    "Schedule1F1B": "1f1b",
    "ScheduleInterleaved1F1B": "interleaved-1f1b",
    "ScheduleInterleavedZeroBubble": "zb-h1",
    "ScheduleZBVZeroBubble": "zb-v",
    "ScheduleDualPipeV": "dualpipev",
})


def _key(name: str) -> str:
    lowered = name.lower()
    return lowered[len("schedule"):] if lowered.startswith("schedule") else lowered


def schedule_aliases() -> dict[str, str]:
    """The rows of :data:`PYTORCH_SCHEDULE_CLASSES` whose schedule is registered."""
    return {alias: name for alias, name in PYTORCH_SCHEDULE_CLASSES.items()
            if name in SCHEDULES}


def canonical_schedule(name: str) -> str:
    """The registry name for ``name``: itself when registered, the schedule a PyTorch
    class name (``Schedule1F1B``) or torchtitan short name (``1F1B``,
    ``interleaved1f1b``) stands for, else ``name`` unchanged (the caller's check then
    reports it)."""
    if name in SCHEDULES or name in INFERENCE_SCHEDULES:
        return name
    wanted = _key(name)
    for alias, target in schedule_aliases().items():
        if _key(alias) == wanted:
            return target
    return name
