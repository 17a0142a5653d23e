"""Schedule names -> generators, with each generator's constraints.

The CLI and the planner look schedules up here by name; adding a schedule is one
generator plus one :class:`ScheduleSpec` entry. ``synth`` (alias ``auto``) is the
synthesised schedule (:mod:`ringpipe.schedules.synthesis`): it is built for given
per-stage costs, so it is kept out of :data:`SCHEDULES` (the fixed ones the planner
always searches); :func:`generate` builds it for uniform costs (F = I = W) and no
memory cap, ``Plan`` and the planner for their own stage costs.

**Other tools' names.** PyTorch's ``torch.distributed.pipelining`` names its schedules by
class (``Schedule1F1B``, ...; torchtitan's ``pipeline_parallel_schedule`` takes the same
names without ``Schedule``, case-insensitively, as PyTorch's ``get_schedule_class``
does). :data:`PYTORCH_SCHEDULE_CLASSES` maps each to the registry name of the schedule
that places and orders the same work, the one table every command reads
(:func:`canonical_schedule`); a schedule added here adds one row there. Rows whose target
is not registered are ignored. Source: PyTorch 2.7 ``torch.distributed.pipelining
.schedules`` (https://pytorch.org/docs/stable/distributed.pipelining.html#pipeline-schedules).
``ScheduleInterleavedZeroBubble`` is PyTorch's zero-bubble schedule (ZB1P of Qi et al.)
looped over v stages per rank; with one stage per rank it is ringpipe's ``zb-h1``, which
takes no ``--stages-per-rank`` (asking for v > 1 is refused).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

from ringpipe.schedules.generators.decode import decode, prefill
from ringpipe.schedules.generators.dualpipev import dualpipev
from ringpipe.schedules.generators.gpipe import gpipe
from ringpipe.schedules.generators.interleaved import interleaved_one_f_one_b
from ringpipe.schedules.generators.one_f_one_b import one_f_one_b
from ringpipe.schedules.generators.zero_bubble import zb_h1
from ringpipe.schedules.generators.zero_bubble_v import zb_v
from ringpipe.schedules.schedule import Schedule
from ringpipe.schedules.simulate import CostModel
from ringpipe.schedules.synthesis import synthesize


@dataclass(frozen=True)
class ScheduleSpec:
    """A registered schedule: its generator and what arguments it accepts.

    ``takes_chunks``: whether v is an argument; if not, v is fixed at
    ``default_chunks`` (1, or 2 for the V-shaped zb-v) and only that value is accepted.
    """

    name: str
    generator: Callable[..., Schedule]
    takes_chunks: bool
    default_chunks: int
    constraints: str
    reference: str


SCHEDULES = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            ScheduleSpec(
                "gpipe", gpipe, False, 1, "p >= 1, m >= 1", "Huang et al., GPipe, NeurIPS 2019"
            ),
            ScheduleSpec(
                "1f1b",
                one_f_one_b,
                False,
                1,
                "p >= 1, m >= 1",
                "Narayanan et al., PipeDream-flush (ICML 2021; SC'21)",
            ),
            ScheduleSpec(
                "interleaved-1f1b",
                interleaved_one_f_one_b,
                True,
                2,
                "p >= 1, v >= 2, m a multiple of p",
                "Narayanan et al., SC'21, section 2.2.2",
            ),
            ScheduleSpec(
                "zb-h1",
                zb_h1,
                False,
                1,
                "p >= 1, m >= 1",
                "Qi et al., Zero Bubble Pipeline Parallelism, ICLR 2024",
            ),
            ScheduleSpec(
                "zb-v",
                zb_v,
                False,
                2,
                "p >= 1, m >= 1, v fixed at 2 (V-shape); minimal bubble once m >= 3p/2",
                "Qi et al., Zero Bubble Pipeline Parallelism, ICLR 2024, section 6; "
                "PyTorch ScheduleZBVZeroBubble",
            ),
            ScheduleSpec(
                "dualpipev",
                dualpipev,
                False,
                2,
                "p >= 1, m >= 2p, v fixed at 2 (V-shape); overlapped F/B pairs",
                "DeepSeek-AI, DeepSeek-V3 technical report (arXiv 2412.19437), DualPipe; "
                "PyTorch ScheduleDualPipeV",
            ),
        )
    }
)


#: Forward-only schedules for generation (:mod:`.inference`); kept apart from the
#: training schedules above, which Plan, verify and the planner choose from.
INFERENCE_SCHEDULES = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            ScheduleSpec("prefill", prefill, False, 1, "p >= 1, m (groups) >= 1",
                         "forward only: the prompt through p ranks"),
            ScheduleSpec("decode", decode, True, 2,
                         "p >= 1, m (groups, <= p useful) >= 1, v = token steps >= 1",
                         "TensorRT-LLM / DeepSpeed-Inference pipelined decoding"),
        )
    }
)


def _uniform_synth(num_ranks: int, num_microbatches: int, chunks_per_rank: int = 1) -> Schedule:
    """The synthesised schedule for F = I = W = 1 on every stage, free messages, no cap."""
    return synthesize(CostModel(), None, num_ranks, num_microbatches, chunks_per_rank)


#: The synthesised schedule's name, and the alias the planner's ``--schedule auto`` uses.
SYNTH, SYNTH_ALIAS = "synth", "auto"
SYNTH_SPEC = ScheduleSpec(
    SYNTH, _uniform_synth, True, 1,
    "p >= 1, m >= 1, v >= 1 stages per rank (v = 2: V or interleaved); built for the "
    "stage costs and activation-memory cap it is given",
    "ringpipe list-scheduling search (ringpipe.schedules.synthesis); the problem of Qi et "
    "al., Zero Bubble Pipeline Parallelism, ICLR 2024, section 3")


def _any_spec(name: str) -> ScheduleSpec:
    """A training or an inference schedule's spec."""
    if isinstance(name, str) and name in INFERENCE_SCHEDULES:
        return INFERENCE_SCHEDULES[name]
    return schedule_spec(name)


def schedule_spec(name: str, argument: str = "name") -> ScheduleSpec:
    """The :class:`ScheduleSpec` registered as ``name`` (``synth`` or ``auto``: the
    synthesised schedule); ValueError lists the known names. ``argument``: how the
    caller's messages name the value (e.g. ``"Plan: schedule"``)."""
    if not isinstance(name, str):
        raise TypeError(f"{argument}: expected a schedule name (str) such as '1f1b', got "
                        f"{type(name).__name__}")
    if name in (SYNTH, SYNTH_ALIAS):
        return SYNTH_SPEC
    try:
        return SCHEDULES[name]
    except KeyError:
        raise ValueError(
            f"{argument}: unknown schedule {name!r}; known: {', '.join(SCHEDULES)}, "
            f"{SYNTH} (alias {SYNTH_ALIAS})"
        ) from None


def resolve_chunks(name: str, chunks: int | None = None) -> int:
    """v, the model chunks per pipeline rank that schedule ``name`` runs with.

    The one place v is resolved (``Plan``, the cost model and the CLI all call it):
    ``chunks`` for schedules that take chunks (their ``default_chunks`` when None), and
    the fixed count for those that do not, where any other ``chunks`` is a ValueError.
    """
    spec = _any_spec(name)
    if spec.takes_chunks:
        return spec.default_chunks if chunks is None else chunks
    if chunks is not None and chunks != spec.default_chunks:
        fixed = spec.default_chunks
        raise ValueError(
            f"chunks_per_rank: {name} does not take chunks per rank (got v = "
            f"{chunks}; it always places {fixed} chunk"
            f"{'s' if fixed > 1 else ''} per rank); schedules that do: "
            + ", ".join(s.name for s in SCHEDULES.values() if s.takes_chunks)
        )
    return spec.default_chunks


def generate(
    name: str, num_ranks: int, num_microbatches: int, chunks_per_rank: int | None = None
) -> Schedule:
    """Build the schedule registered as ``name``.

    ``chunks_per_rank`` (v) is accepted only by schedules that take chunks; for them
    it defaults to the spec's ``default_chunks``.
    """
    spec = _any_spec(name)
    v = resolve_chunks(name, chunks_per_rank)
    if not spec.takes_chunks:
        return spec.generator(num_ranks, num_microbatches)
    return spec.generator(num_ranks, num_microbatches, v)

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
