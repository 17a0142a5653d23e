"""Stage -> rank placements: where each of a schedule's p·v stages runs.

* one chunk per rank: stage s on rank s (GPipe, 1F1B, ZB-H1);
* interleaved (Megatron's virtual pipeline): stage s on rank ``s % p``;
* V-shape (ZB-V, DualPipeV): rank r holds stages r and ``2p-1-r``;
* :func:`infer_placement`: the placement a hand-written list of actions implies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ringpipe.schedules.actions import Action

__all__ = ["infer_placement", "interleaved_placement", "one_chunk_placement",
           "v_shape_placement"]


def one_chunk_placement(num_ranks: int) -> tuple[int, ...]:
    """Stage s on rank s (GPipe, 1F1B, ZB-H1)."""
    return tuple(range(num_ranks))


def interleaved_placement(num_ranks: int, chunks_per_rank: int) -> tuple[int, ...]:
    """Megatron's virtual pipeline: stage s on rank ``s % p``."""
    return tuple(s % num_ranks for s in range(num_ranks * chunks_per_rank))


def v_shape_placement(num_ranks: int) -> tuple[int, ...]:
    """V-shape: rank r holds stages r and ``2p-1-r`` (ZB-V, DualPipeV)."""
    return tuple(s if s < num_ranks else 2 * num_ranks - 1 - s for s in range(2 * num_ranks))


def infer_placement(rows: Sequence[Iterable[Action | None]]) -> tuple[int, ...]:
    """The stage -> rank map implied by where each stage's actions run.

    Raises ValueError when a stage runs on two ranks or stage indices have gaps.
    """
    where: dict[int, int] = {}
    for rank, row in enumerate(rows):
        for action in row:
            if action is None:
                continue
            for part in action.parts:  # an overlapped F/B pair runs two stages
                seen = where.setdefault(part.stage, rank)
                if seen != rank:
                    raise ValueError(
                        f"actions: stage {part.stage} runs on ranks {seen} and {rank}; "
                        "a stage must live on exactly one rank"
                    )
    if not where:
        raise ValueError("actions: the schedule has no actions")
    missing = sorted(set(range(max(where) + 1)) - set(where))
    if missing:
        raise ValueError(f"actions: stages {missing} never appear; stage indices must be 0..S-1")
    return tuple(where[s] for s in range(len(where)))
