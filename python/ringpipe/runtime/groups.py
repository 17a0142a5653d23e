"""Group collectives as the runtimes call them: reduce, then count what each rank sent.

The layers of a stage call ``all_reduce(buffers)`` (Megatron's f and g operators) and
the runtime reduces gradient buckets over the DP group. A :class:`CountedAllReduce`
wraps whichever reduction a runtime has (``ringpipe.all_reduce`` over T in-process
buffers, or a communicator over one buffer per process) and records, for every rank
taking part here, one call and the bytes that rank sends in the step table
(:meth:`~ringpipe.kernels.steps.StepTable.bytes_sent`). Both runtimes count through it,
so their counters agree. A group of one rank neither reduces nor counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ringpipe.kernels.registry import step_table

__all__ = ["ALLREDUCE_ALGORITHMS", "CountedAllReduce", "RankTally"]

#: The step-table algorithms the runtimes' TP and DP reductions run (NCCL is a transport
#: option of the MPI runtime on GPUs, not a plan's algorithm).
ALLREDUCE_ALGORITHMS = ("ring", "tree")


@dataclass
class RankTally:
    """Running counts of one mesh rank: bytes sent and all-reduce calls, per group:
    "tp", "pp", "dp" (dense gradients, over the DP × CP group), "cp" (the ring
    attention's K/V blocks, the MoE auxiliary loss's counts), "ep" (the MoE all-to-alls
    and count gathers) and "edp" (expert gradients)."""

    bytes_sent: dict[str, int] = field(default_factory=lambda: {
        "tp": 0, "pp": 0, "dp": 0, "cp": 0, "ep": 0, "edp": 0})
    calls: dict[str, int] = field(default_factory=lambda: {"tp": 0, "dp": 0, "cp": 0,
                                                           "edp": 0})


class CountedAllReduce:
    """``reduce(buffers)`` over a group of ``size`` ranks, counted; see the module docs.

    ``members[i]`` is the position in the group of the rank owning ``buffers[i]`` and
    ``tallies[i]`` its tally.
    """

    def __init__(self, reduce: Callable[[list], None], algorithm: str, group: str,
                 size: int, members: Sequence[int], tallies: Sequence[RankTally]) -> None:
        self.reduce, self.algorithm, self.group, self.size = reduce, algorithm, group, size
        self.members, self.tallies = tuple(members), tuple(tallies)

    def __call__(self, buffers: list) -> None:
        if self.size == 1:
            return
        self.reduce(buffers)
        sent = step_table("all_reduce", self.algorithm, self.size).bytes_sent(
            buffers[0].size, buffers[0].itemsize)
        for member, tally in zip(self.members, self.tallies, strict=True):
            tally.calls[self.group] += 1
            tally.bytes_sent[self.group] += int(sent[member])
