"""``ringpipe plan --emit TOOL``: the recommended plan as the settings of the tool that
will run it.

* training (``ringpipe plan``): ``megatron`` (Megatron-LM flags), ``nemo`` (NeMo 2.0
  recipe overrides), ``torchtitan`` (job-config TOML), ``deepspeed`` (config JSON);
* serving (``ringpipe plan --inference``): ``vllm``, ``sglang``, ``trtllm``
  (server flags).

Every setting printed is checked against the tool's documented spelling, kept as data
with its source (:mod:`.flags`, ``data/<tool>.toml``). When a tool cannot run the
winner as planned (a schedule it lacks, such as ZB-V in Megatron-LM), the output says
so and emits the best-ranked candidate the tool can run, with how much slower it is
predicted; when it can run none, :func:`emit_training` raises ValueError.
"""

from __future__ import annotations

from ringpipe.cli.emit.flags import comment, render, tool_data
from ringpipe.cli.emit.serving import SERVING_EMITTERS
from ringpipe.cli.emit.training import TRAINING_EMITTERS
from ringpipe.cost.inference.search import InferenceSearch
from ringpipe.cost.training.search import SearchReport

__all__ = ["EMIT_TOOLS", "check_emit", "comment", "emit_serving", "emit_training"]

#: Every ``--emit`` choice, training tools first.
EMIT_TOOLS = (*TRAINING_EMITTERS, *SERVING_EMITTERS)


def check_emit(tool: str | None, inference: bool) -> None:
    """ValueError when ``--emit tool`` does not go with (or without) ``--inference``."""
    if tool is None:
        return
    if inference and tool in TRAINING_EMITTERS:
        raise ValueError(f"--emit {tool} is for training plans; with --inference use one "
                         f"of {', '.join(SERVING_EMITTERS)}")
    if not inference and tool in SERVING_EMITTERS:
        raise ValueError(f"--emit {tool} prints a serving layout: add --inference (or use "
                         f"one of {', '.join(TRAINING_EMITTERS)} for training)")


def emit_training(report: SearchReport, tool: str) -> str:
    """The best fitting candidate ``tool`` can run, as its settings (module docstring)."""
    emitter, name = TRAINING_EMITTERS[tool], tool_data(tool).tool
    fitting = report.fitting
    refusals: list[str] = []
    for rank, p in enumerate(fitting, 1):
        result = emitter(p, report)
        if isinstance(result, str):
            refusals.append(result)
            continue
        if rank == 1:
            return render(result)
        best = fitting[0]
        note = (f"{name} cannot run the winner ({best.config.label()}) as planned: "
                f"{refusals[0]}. Emitting the best plan it can run instead, #{rank} "
                f"{p.config.label()}, predicted {p.step_time:.3g} s/step "
                f"({p.step_time / best.step_time - 1:.2%} slower).")
        return "\n".join([comment(note), render(result)])
    first = refusals[0] if refusals else "no configuration fits"
    raise ValueError(f"--emit {tool}: {name} can run none of the {len(fitting)} fitting "
                     f"configurations (the winner: {first})")


def emit_serving(report: InferenceSearch, tool: str) -> str:
    """The best serving layout as ``tool``'s server flags (ValueError when none fits)."""
    if report.best is None:
        raise ValueError(f"--emit {tool}: no layout fits and meets the SLOs")
    return render(SERVING_EMITTERS[tool](report))
