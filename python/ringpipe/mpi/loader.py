"""Import ``mpi4py.MPI`` on demand, with an error that says how to get it."""

from __future__ import annotations

from types import ModuleType


def load_mpi() -> ModuleType:
    """The ``mpi4py.MPI`` module (initialises MPI on first use).

    Raises ImportError naming the extra to install when mpi4py is missing.
    """
    try:
        from mpi4py import MPI
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("the MPI runtime needs mpi4py and an MPI library: "
                          "pip install 'ringpipe[mpi]' (mpi4py + the mpich wheel)") from exc
    return MPI
