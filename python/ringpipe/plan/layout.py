"""How a model is laid out over pipeline stages: the one stage layout.

``Plan`` (what runs) and :mod:`ringpipe.cost.training` (what is priced) both read a
:class:`PipelineLayout`, so the planner prices exactly the layout the runtime executes.
A schedule with p pipeline ranks and v stages per rank has S = p·v stages, in stage
order (stage s on rank ``placement[s]``); each is a :class:`LayoutStage`:

* the embedding (``E``) or not: only stage 0, which takes the data;
* k >= 0 transformer layers (``t``), a contiguous slice in stage order;
* the output layer and loss (``L``) or not: only the last stage.

A stage with no layer must hold the embedding or the head. Real pipelines are uneven:
with 128k–256k vocabularies the embedding and the logit layer cost several layers, so
Megatron-LM places them on stages of their own (``--pipeline-model-parallel-layout``)
and the zero-bubble runs give the first and last stages a layer fewer (Qi et al., §5.1).

**Text form**, Megatron-core's ``--pipeline-model-parallel-layout`` (``E`` embedding,
``t`` transformer layer, ``L`` loss, ``|`` between stages in stage order, ``x*N`` and
``(…)*N`` repeat, commas and blanks are cosmetic): ``"E,t*3|t*4|t*4|t*2,L"`` is 4
stages of 3 + 4 + 4 + 2 layers, ``"E|(t|)*22L"`` 24 stages of which the first holds the
embedding alone and the last the loss alone. Unlike Megatron, empty stages (``||``)
and MTP layers (``m``) are refused. :meth:`PipelineLayout.format` writes the canonical
form (runs of three or more equal middle stages as ``(…|)*N``); ``parse(format(x)) == x``.

Splits: :meth:`PipelineLayout.even` (the first ``L mod S`` stages one layer more, the
embedding and head on top: Megatron's default, and :func:`split_layers`) and
:meth:`PipelineLayout.balanced` (:mod:`ringpipe.plan.balance`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ringpipe.plan.balance import balanced_counts
from ringpipe.validation import check_int

__all__ = ["MAX_LAYOUT_SYMBOLS", "SPLITS", "LayoutStage", "PipelineLayout", "split_layers",
           "stage_bounds"]

#: The splits ``Plan``, ``ringpipe verify`` and ``ringpipe plan`` accept (``--split``).
SPLITS = ("even", "balanced")
#: Most symbols a layout string may expand to (a bound on ``(…)*N``).
MAX_LAYOUT_SYMBOLS = 1_000_000
_TOKEN = re.compile(r"\s*(?:([EtLm|()])|\*\s*([0-9]+)|(,)|(\S))")


@dataclass(frozen=True)
class LayoutStage:
    """One pipeline stage: the embedding or not, ``layers`` transformer layers, the
    output layer and loss (``head``) or not."""

    embedding: bool = False
    layers: int = 0
    head: bool = False

    def __post_init__(self) -> None:
        for name in ("embedding", "head"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"LayoutStage.{name} must be a bool, got "
                                f"{type(getattr(self, name)).__name__}")
        check_int("LayoutStage.layers", self.layers, 0)
        if not (self.layers or self.embedding or self.head):
            raise ValueError("LayoutStage: a stage with no layer must hold the embedding "
                             "or the head (an empty stage does no work)")

    def format(self) -> str:
        """``E,t*3``-style text of this stage."""
        parts = ["E"] if self.embedding else []
        if self.layers:
            parts.append("t" if self.layers == 1 else f"t*{self.layers}")
        return ",".join(parts + (["L"] if self.head else []))


def _tokens(text: str) -> list[tuple[str, int]]:
    """(symbol, 0) or ("*", N) tokens of a layout string; ValueError on anything else."""
    out: list[tuple[str, int]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:  # only trailing blanks are left
            break
        symbol, count, _comma, bad = match.groups()
        if bad is not None:
            raise ValueError(f"layout: {bad!r} at position {match.start(4)} of {text!r} is "
                             "not a layout symbol (E, t, L, |, (, ), *N, commas)")
        if symbol is not None:
            out.append((symbol, 0))
        elif count is not None:
            out.append(("*", int(count)))
        pos = match.end()
    return out


def _expand(tokens: list[tuple[str, int]], text: str) -> list[str]:
    """The symbols of ``tokens`` with every ``x*N`` and ``(…)*N`` expanded."""
    stack: list[list[str]] = [[]]
    last: list[str] | None = None  # what a following "*N" repeats
    for symbol, count in tokens:
        if symbol == "(":
            stack.append([])
            last = None
        elif symbol == ")":
            if len(stack) == 1:
                raise ValueError(f"layout: unmatched ')' in {text!r}")
            last = stack.pop()
            stack[-1].extend(last)
        elif symbol == "*":
            if last is None:
                raise ValueError(f"layout: '*{count}' in {text!r} repeats nothing (write "
                                 "t*3 or (t|)*3)")
            if len(stack[-1]) + len(last) * max(count - 1, 0) > MAX_LAYOUT_SYMBOLS:
                raise ValueError(f"layout: {text!r} expands to more than "
                                 f"{MAX_LAYOUT_SYMBOLS} symbols")
            del stack[-1][len(stack[-1]) - len(last):]
            stack[-1].extend(last * count)
            last = None
        else:
            last = [symbol]
            stack[-1].append(symbol)
    if len(stack) != 1:
        raise ValueError(f"layout: unmatched '(' in {text!r}")
    return stack[0]


def _stage(symbols: list[str], index: int, count: int, text: str) -> LayoutStage:
    if "m" in symbols:
        raise ValueError(f"layout: stage {index} of {text!r} holds an MTP layer (m); "
                         "ringpipe models E, t and L only")
    if not symbols:
        raise ValueError(f"layout: stage {index} of {text!r} is empty; every stage needs "
                         "a layer, the embedding (E, stage 0) or the loss (L, last stage)")
    embedding, head = symbols[0] == "E", symbols[-1] == "L"
    middle = symbols[int(embedding):len(symbols) - int(head)]
    if "E" in middle or (embedding and index != 0):
        raise ValueError(f"layout: in {text!r} the embedding E must open stage 0 "
                         f"(found in stage {index})")
    if "L" in middle or (head and index != count - 1):
        raise ValueError(f"layout: in {text!r} the loss L must close the last stage "
                         f"(found in stage {index} of {count})")
    return LayoutStage(embedding, len(middle), head)


@dataclass(frozen=True)
class PipelineLayout:
    """The stages of a pipeline in stage order (module docstring)."""

    stages: tuple[LayoutStage, ...]

    def __post_init__(self) -> None:
        if isinstance(self.stages, (str, bytes)) or not isinstance(self.stages, Sequence):
            raise TypeError("PipelineLayout.stages must be a tuple of LayoutStage (or use "
                            "PipelineLayout.parse for the text form)")
        object.__setattr__(self, "stages", tuple(self.stages))
        if not self.stages:
            raise ValueError("PipelineLayout needs at least one stage")
        last = len(self.stages) - 1
        for s, stage in enumerate(self.stages):
            if not isinstance(stage, LayoutStage):
                raise TypeError(f"PipelineLayout.stages[{s}] must be a LayoutStage, got "
                                f"{type(stage).__name__}")
            if stage.embedding != (s == 0):
                raise ValueError(f"PipelineLayout: the embedding belongs to stage 0 and only "
                                 f"there (stage {s} has embedding={stage.embedding})")
            if stage.head != (s == last):
                raise ValueError(f"PipelineLayout: the output layer and loss belong to the "
                                 f"last stage ({last}) and only there (stage {s} has "
                                 f"head={stage.head})")

    # -- construction -----------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> PipelineLayout:
        """The layout a Megatron-style string describes (module docstring)."""
        if not isinstance(text, str):
            raise TypeError(f"layout: expected a string such as 'E,t*3|t*4|t*4|t*2,L', "
                            f"got {type(text).__name__}")
        symbols = _expand(_tokens(text), text)
        groups: list[list[str]] = [[]]
        for symbol in symbols:
            if symbol == "|":
                groups.append([])
            else:
                groups[-1].append(symbol)
        return cls(tuple(_stage(g, i, len(groups), text) for i, g in enumerate(groups)))

    @classmethod
    def from_counts(cls, layers_per_stage: Sequence[int]) -> PipelineLayout:
        """Stage s holds ``layers_per_stage[s]`` layers, the embedding on stage 0 and the
        head on the last (0 layers only where a stage holds one of those)."""
        counts = list(layers_per_stage)
        last = len(counts) - 1
        return cls(tuple(LayoutStage(s == 0, check_int(f"layers_per_stage[{s}]", n, 0),
                                     s == last) for s, n in enumerate(counts)))

    @classmethod
    def even(cls, layers: int, num_stages: int) -> PipelineLayout:
        """:func:`split_layers`' even split, embedding on stage 0 and head on the last."""
        return cls.from_counts(split_layers(layers, num_stages))

    @classmethod
    def balanced(cls, layers: int, num_stages: int, **costs: object) -> PipelineLayout:
        """The balanced split of :func:`ringpipe.plan.balance.balanced_counts` (same
        keyword arguments: per-layer, embedding and head costs, placement, memory)."""
        return cls.from_counts(balanced_counts(layers, num_stages, **costs))  # type: ignore[arg-type]

    # -- views ------------------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        """S = p·v."""
        return len(self.stages)

    @property
    def num_layers(self) -> int:
        """Transformer layers over all stages."""
        return sum(s.layers for s in self.stages)

    @property
    def layers_per_stage(self) -> tuple[int, ...]:
        """Transformer layers of each stage."""
        return tuple(s.layers for s in self.stages)

    @property
    def bounds(self) -> tuple[int, ...]:
        """Stage s holds layers ``[bounds[s], bounds[s+1])``."""
        return stage_bounds(self.layers_per_stage)

    def check(self, layers: int, num_stages: int) -> PipelineLayout:
        """This layout, or ValueError unless it has ``num_stages`` stages and ``layers``
        layers in all."""
        if self.num_stages != num_stages:
            raise ValueError(f"layout {self.format()!r} has {self.num_stages} stages, the "
                             f"schedule has {num_stages} (pipeline ranks × stages per rank)")
        if self.num_layers != layers:
            raise ValueError(f"layout {self.format()!r} holds {self.num_layers} layers, the "
                             f"model has {layers}")
        return self

    def format(self) -> str:
        """The canonical text form (module docstring)."""
        texts = [s.format() for s in self.stages]
        out: list[str] = []
        i = 0
        while i < len(texts):
            j = i
            while j < len(texts) and texts[j] == texts[i] and 0 < j < len(texts) - 1:
                j += 1
            run = j - i
            if run >= 3:
                out.append(f"({texts[i]}|)*{run}")
                i = j
            else:
                out.append(texts[i] + ("|" if i < len(texts) - 1 else ""))
                i += 1
        return "".join(out)

    def __str__(self) -> str:
        return self.format()


def split_layers(layers: int, stages: int,
                 layers_per_stage: list[int] | tuple[int, ...] | None = None) -> tuple[int, ...]:
    """Layers per stage for ``layers`` layers over ``stages`` stages.

    Even by default: ``layers = q·S + r`` gives the first r stages q + 1 layers and the
    rest q (as Megatron-LM's even split does when S divides L, and with the remainder on
    the earliest stages otherwise). ``layers_per_stage`` overrides it with an explicit
    split of S entries summing to ``layers``; an entry may be 0 only on the first stage
    (which holds the embedding) or the last (which holds the head).
    """
    layers = check_int("layers", layers)
    stages = check_int("stages", stages)
    if layers_per_stage is None:
        if stages > layers:
            raise ValueError(f"more pipeline stages ({stages}) than layers ({layers}); an "
                             "even split gives every stage a layer (give a layout such as "
                             "'E|t|...|t|L' to put the embedding or head on a stage alone)")
        base, extra = divmod(layers, stages)
        return tuple(base + (1 if s < extra else 0) for s in range(stages))
    if not isinstance(layers_per_stage, (list, tuple)):
        raise TypeError("layers_per_stage must be a list of ints, one per stage")
    counts = [check_int(f"layers_per_stage[{i}]", n, 0) for i, n in enumerate(layers_per_stage)]
    if len(counts) != stages:
        raise ValueError(f"layers_per_stage has {len(counts)} entries for {stages} stages")
    empty = [s for s, n in enumerate(counts) if n == 0 and 0 < s < stages - 1]
    if empty or (stages == 1 and counts[0] == 0):
        raise ValueError(f"layers_per_stage {counts}: stage(s) {empty or [0]} hold no layer; "
                         "only the first stage (embedding) and the last (head) may")
    if sum(counts) != layers:
        raise ValueError(f"layers_per_stage {counts} sums to {sum(counts)}, the model has "
                         f"{layers} layers")
    return tuple(counts)


def stage_bounds(layers_per_stage: tuple[int, ...]) -> tuple[int, ...]:
    """Cumulative layer bounds: stage s holds layers ``[bounds[s], bounds[s+1])``."""
    bounds = [0]
    for n in layers_per_stage:
        bounds.append(bounds[-1] + n)
    return tuple(bounds)
