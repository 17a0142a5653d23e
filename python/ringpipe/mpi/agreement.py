"""The agreement check of :class:`~ringpipe.mpi.group.ProcessGroup`'s collectives.

A collective whose ranks disagree on the buffer size, dtype, op, algorithm or (for
``all_gather``) in place vs ``out=`` would hang or corrupt memory. Before any data
moves, every rank ``Allgather`` s one record of eight int64 -- (count, dtype, op,
algorithm, collective, local error code, ``out=`` given in ``all_gather``, the group's
``segment_bytes``) -- and every
rank raises the same TypeError/ValueError (:class:`CollectiveError` for another rank's
problem) naming the first offending world rank. A local problem (not an array, an
unsupported dtype, not C-contiguous, read-only, a wrong ``out``, an unknown or
unhashable algorithm or op) travels in the record as a code, so no rank is left
waiting. ``segment_bytes`` is in the record because it shapes the step table's messages
(how many segments each chunk is cut into, and whether a small all-reduce takes the
staged path): ranks that disagree on it would post different messages and wait
forever. When every rank agrees, the check costs the ``Allgather`` and one byte-string
comparison of the gathered table with this rank's record repeated N times.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ringpipe.collectives.checks import SUPPORTED_DTYPES, SUPPORTED_OPS
from ringpipe.kernels.registry import ALGORITHMS

__all__ = ["MPI_ALGORITHMS", "Agreement", "CollectiveError", "local_problem"]

#: Algorithms per collective; "mpi" (the library's own: MPI_Allreduce, MPI_Alltoall) is
#: offered for all_reduce and all_to_all.
MPI_ALGORITHMS = {
    "all_reduce": (*ALGORITHMS["all_reduce"], "mpi"),
    "reduce_scatter": tuple(ALGORITHMS["reduce_scatter"]),
    "all_gather": tuple(ALGORITHMS["all_gather"]),
    "all_to_all": (*ALGORITHMS["all_to_all"], "mpi"),
}
_COLLECTIVES = tuple(MPI_ALGORITHMS)
_ERRORS = ("", "buffer is not a numpy array", "buffer has an unsupported dtype",
           "buffer is not C-contiguous", "buffer is read-only",
           "out is not a writeable C-contiguous numpy array of the buffer's dtype",
           "out has the wrong number of elements", "unknown algorithm", "unknown op")
_DTYPE_INDEX = {d: i for i, d in enumerate(SUPPORTED_DTYPES)}
_OP_INDEX = {o: i for i, o in enumerate(SUPPORTED_OPS)}
_ALGORITHM_INDEX = {c: {a: i for i, a in enumerate(algs)} for c, algs in MPI_ALGORITHMS.items()}
#: Fields of the agreement record, one int64 each.
_COUNT, _DTYPE, _OP, _ALGORITHM, _COLLECTIVE, _CODE, _OUT, _SEGMENT = range(8)
_FIELDS = 8


class CollectiveError(ValueError):
    """A collective's ranks disagree or one rank's arguments are invalid."""


def local_problem(buffer: object, out: object, writeable: bool,
                   out_elems: int | None) -> tuple[int, type[Exception], str]:
    """(error code, exception type, message) of this rank's arguments; code 0 if fine."""
    if isinstance(buffer, (np.matrix, np.ma.MaskedArray)):
        return 1, TypeError, f"buffer is an {type(buffer).__name__}; pass np.asarray(...)"
    if not isinstance(buffer, np.ndarray):
        return 1, TypeError, f"buffer is a {type(buffer).__name__}, expected numpy.ndarray"
    if buffer.dtype not in SUPPORTED_DTYPES:
        return 2, TypeError, (f"buffer has unsupported dtype {buffer.dtype}; supported: "
                              f"{', '.join(str(d) for d in SUPPORTED_DTYPES)}")
    if not buffer.flags.c_contiguous:
        return 3, ValueError, "buffer is not C-contiguous; pass np.ascontiguousarray(...)"
    if writeable and not buffer.flags.writeable:
        return 4, ValueError, "buffer is read-only"
    if out is not None:
        if not (isinstance(out, np.ndarray) and out.flags.c_contiguous
                and out.flags.writeable and out.dtype == buffer.dtype):
            return 5, TypeError, _ERRORS[5]
        if out_elems is not None and out.size != out_elems:
            return 6, ValueError, f"out has {out.size} elements, expected {out_elems}"
        if np.may_share_memory(out, buffer) and out.size != buffer.size:
            return 6, ValueError, "out partially overlaps buffer"
    return 0, ValueError, ""



class Agreement:
    """The per-group state of the check: the communicator, the group's name, world ranks
    (to name offenders) and the record buffers, reused by every call."""

    def __init__(self, comm: Any, name: str, world_rank: int,  # noqa: ANN401
                 world_ranks: tuple[int, ...]) -> None:
        self.comm, self.name = comm, name
        self.world_rank, self.world_ranks = world_rank, world_ranks
        self.size = len(world_ranks)
        self._record = np.empty(_FIELDS, dtype=np.int64)
        self._table = np.empty((self.size, _FIELDS), dtype=np.int64)

    def check(self, collective: str, buffer: object, algorithm: str, op: str,
              out: object = None, out_elems: int | None = None,
              writeable: bool = True, segment_bytes: int = 0) -> None:
        """Allgather this rank's record; return if every rank's is this one and has no
        error, else raise alike on every rank (module docstring). ``segment_bytes``: the
        group's, which the ranks must share."""
        # a bad algorithm or op is reported through the Allgather like any other local
        # problem, so every rank raises and none is left waiting in the collective
        algorithm_index = lookup(_ALGORITHM_INDEX[collective], algorithm)
        op_index = lookup(_OP_INDEX, op)
        if algorithm_index < 0:
            code, kind, message = 7, ValueError, (
                f"unknown algorithm {algorithm!r}; choose one of "
                f"{', '.join(map(repr, MPI_ALGORITHMS[collective]))}")
        elif op_index < 0:
            code, kind, message = 8, ValueError, (
                f"unknown op {op!r}; choose one of {', '.join(map(repr, SUPPORTED_OPS))}")
        else:
            code, kind, message = local_problem(buffer, out, writeable, out_elems)
        mine, table = self._record, self._table
        mine[_COUNT] = buffer.size if code == 0 else -1  # type: ignore[union-attr]
        mine[_DTYPE] = _DTYPE_INDEX[buffer.dtype] if code == 0 else -1  # type: ignore
        mine[_OP], mine[_ALGORITHM] = op_index, algorithm_index
        mine[_COLLECTIVE], mine[_CODE] = _COLLECTIVES.index(collective), code
        # in place and out= exchange different piece sizes only in all_gather
        mine[_OUT] = out is not None and collective == "all_gather"
        mine[_SEGMENT] = segment_bytes
        self.comm.Allgather(mine, table)
        if code == 0 and table.tobytes() == mine.tobytes() * self.size:
            return  # every rank sent the same record, and it has no error
        self._refuse(collective, table, code, kind, message)

    def _refuse(self, collective: str, table: np.ndarray, code: int,
                kind: type[Exception], message: str) -> None:
        """Raise, alike on every rank, for the gathered records ``table``."""
        where = f"{collective} ({self.name})"
        bad = np.flatnonzero(table[:, _CODE])
        if bad.size:
            who = self.world_ranks[int(bad[0])]
            if code and who == self.world_rank:
                raise kind(f"{where}: rank {who}: {message}")
            raise CollectiveError(f"{where}: rank {who}: "
                                  f"{_ERRORS[int(table[bad[0], _CODE])]}")
        for r in range(1, self.size):
            if table[r, _SEGMENT] != table[0, _SEGMENT]:
                raise CollectiveError(
                    f"{where}: rank {self.world_ranks[r]}: segment_bytes="
                    f"{int(table[r, _SEGMENT])} but rank {self.world_ranks[0]} has "
                    f"segment_bytes={int(table[0, _SEGMENT])}; every rank of a group "
                    "needs the same segment_bytes (it shapes the step table's messages)")
            if not np.array_equal(table[r], table[0]):
                raise CollectiveError(f"{where}: rank {self.world_ranks[r]}: "
                                      f"{describe(table[r], table[0])} but rank "
                                      f"{self.world_ranks[0]} has "
                                      f"{describe(table[0], table[r])}")
        raise CollectiveError(f"{where}: the ranks' agreement records differ")


def lookup(index: dict, key: object) -> int:
    """``index[key]``, or -1 for an unknown or unhashable key (reported, not raised,
    so that the Allgather still runs and every rank raises alike)."""
    try:
        return index.get(key, -1)
    except TypeError:
        return -1


def describe(row: np.ndarray, other: np.ndarray) -> str:
    """Rank ``row`` 's call, naming the collective and in place/``out=`` only where they
    differ from ``other`` 's."""
    dtype = SUPPORTED_DTYPES[int(row[_DTYPE])]
    collective = _COLLECTIVES[int(row[_COLLECTIVE])]
    what = f"{collective} of " if row[_COLLECTIVE] != other[_COLLECTIVE] else ""
    where = ("" if row[_OUT] == other[_OUT] else
             " (with out=)" if row[_OUT] else " (in place)")
    return (f"{what}{int(row[_COUNT])} elements of {dtype}{where}, op "
            f"{SUPPORTED_OPS[int(row[_OP])]!r}, algorithm "
            f"{MPI_ALGORITHMS[collective][int(row[_ALGORITHM])]!r}")
