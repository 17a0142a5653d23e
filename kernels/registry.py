"""Name -> step-table generator, for every (collective, algorithm) pair ringpipe has.

A new algorithm is one generator plus one entry here; every executor, the cost model
and the MPI runtime then pick it up unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from ringpipe.kernels.exchange import pairwise_all_to_all
from ringpipe.kernels.ring import (
    ring_all_gather,
    ring_all_reduce,
    ring_broadcast,
    ring_reduce,
    ring_reduce_scatter,
)
from ringpipe.kernels.steps import StepTable
from ringpipe.kernels.tree import tree_all_reduce, tree_broadcast, tree_reduce

#: collective -> algorithm -> generator. Rooted collectives take ``(nranks, root, k)``,
#: the others ``(nranks,)`` or ``(nranks, k)`` where k is the pipeline chunk count.
ALGORITHMS: dict[str, dict[str, Callable[..., StepTable]]] = {
    "all_reduce": {"ring": ring_all_reduce, "tree": tree_all_reduce},
    "reduce_scatter": {"ring": ring_reduce_scatter},
    "all_gather": {"ring": ring_all_gather},
    "broadcast": {"ring": ring_broadcast, "tree": tree_broadcast},
    "reduce": {"ring": ring_reduce, "tree": tree_reduce},
    "all_to_all": {"pairwise": pairwise_all_to_all},
}

ROOTED = ("broadcast", "reduce")


def step_table(collective: str, algorithm: str, nranks: int, root: int = 0,
               pipeline_chunks: int = 1) -> StepTable:
    """The step table of ``algorithm`` for ``collective`` on ``nranks`` ranks.

    ``pipeline_chunks`` (K) only changes how finely tree and chain algorithms pipeline;
    it never changes an element's reduction order. The ring's chunk count is always N.
    """
    try:
        make = ALGORITHMS[collective][algorithm]
    except KeyError:
        known = ALGORITHMS.get(collective)
        if known is None:
            raise ValueError(f"unknown collective {collective!r}; choose one of "
                             f"{', '.join(map(repr, ALGORITHMS))}") from None
        raise ValueError(f"{collective}: unknown algorithm {algorithm!r}; choose one of "
                         f"{', '.join(map(repr, known))}") from None
    if collective in ROOTED:
        return make(nranks, root, pipeline_chunks)
    if algorithm == "tree":
        return make(nranks, pipeline_chunks)
    return make(nranks)
