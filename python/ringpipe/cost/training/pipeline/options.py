"""The schedules, stages per rank and splits the search prices for one pipeline depth.

For pp pipeline ranks: the pinned schedule or every built-in one (1F1B alone without a
pipeline); for each, its chunks per rank (v = 2 .. ``max_chunks`` for interleaved 1F1B,
1 and 2 for the synthesised schedule, the fixed count otherwise); for each, the splits
searched: the explicit layout when it has pp·v stages, else ``even`` when pp·v divides
the layers (or ``allow_uneven``, or pp pinned) and ``balanced`` when pp·v stages can hold
them (the first and last may hold none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ringpipe.model.config import ModelConfig
from ringpipe.schedules import schedule_spec
from ringpipe.schedules.registry import SYNTH

if TYPE_CHECKING:
    from ringpipe.cost.training.search import SearchSpace

__all__ = ["schedule_options"]


def schedule_options(model: ModelConfig, pp: int,
                      space: SearchSpace) -> list[tuple[str, int, str]]:
    """(schedule, v, split) triples: every schedule, v and split the space allows."""
    names = (space.schedule,) if space.schedule else (("1f1b",) if pp == 1 else
                                                      space.schedules)
    uneven = space.allow_uneven or space.pp is not None
    out = []
    for name in names:
        spec = schedule_spec(name)
        if spec.name == SYNTH:
            vs = [space.chunks] if space.chunks else [1, 2]
        elif spec.takes_chunks:
            vs = [space.chunks] if space.chunks else range(2, space.max_chunks + 1)
        else:
            vs = [spec.default_chunks]
        for v in vs:
            stages = pp * v
            if space.layout is not None:
                if space.layout.num_stages == stages:
                    out.append((name, v, "even"))
                continue
            for split in space.splits:
                even_ok = model.layers % stages == 0 or (uneven and stages <= model.layers)
                if (split == "even" and even_ok) or (split == "balanced"
                                                     and stages <= model.layers + 2):
                    out.append((name, v, split))
    return out
