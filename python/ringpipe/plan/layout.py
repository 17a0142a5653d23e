"""How a model's layers are laid out over pipeline stages: the one layer split.

``Plan`` (what runs) and :mod:`ringpipe.cost` (what is priced) both call
:func:`split_layers`, so the planner prices exactly the layout the runtime executes.
A schedule with p pipeline ranks and v chunks per rank has S = p·v stages; stage s
holds a contiguous slice of layers.
"""

from __future__ import annotations

from ringpipe.validation import check_int

__all__ = ["split_layers", "stage_bounds"]


def split_layers(layers: int, stages: int,
                 layers_per_stage: list[int] | tuple[int, ...] | None = None) -> tuple[int, ...]:
    """Layers per stage for ``layers`` layers over ``stages`` stages.

    Even by default: ``layers = q·S + r`` gives the first r stages q + 1 layers and the
    rest q (as Megatron-LM's even split does when S divides L, and with the remainder on
    the earliest stages otherwise). ``layers_per_stage`` overrides it with an explicit
    uneven split, which must have S positive entries summing to ``layers``.
    """
    layers = check_int("layers", layers)
    stages = check_int("stages", stages)
    if stages > layers:
        raise ValueError(f"more pipeline stages ({stages}) than layers ({layers}); every "
                         "stage needs at least one layer")
    if layers_per_stage is None:
        base, extra = divmod(layers, stages)
        return tuple(base + (1 if s < extra else 0) for s in range(stages))
    if not isinstance(layers_per_stage, (list, tuple)):
        raise TypeError("layers_per_stage must be a list of ints, one per stage")
    layers_per_stage = [check_int(f"layers_per_stage[{i}]", n, None)
                        for i, n in enumerate(layers_per_stage)]
    if len(layers_per_stage) != stages:
        raise ValueError(f"layers_per_stage has {len(layers_per_stage)} entries for "
                         f"{stages} stages")
    if min(layers_per_stage) < 1:
        raise ValueError(f"layers_per_stage {list(layers_per_stage)}: every stage needs "
                         "at least one layer")
    if sum(layers_per_stage) != layers:
        raise ValueError(f"layers_per_stage {list(layers_per_stage)} sums to "
                         f"{sum(layers_per_stage)}, the model has {layers} layers")
    return tuple(layers_per_stage)


def stage_bounds(layers_per_stage: tuple[int, ...]) -> tuple[int, ...]:
    """Cumulative layer bounds: stage s holds layers ``[bounds[s], bounds[s+1])``."""
    bounds = [0]
    for n in layers_per_stage:
        bounds.append(bounds[-1] + n)
    return tuple(bounds)
