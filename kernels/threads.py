"""The thread pools of the compute libraries, held to one rank's fair share of the cores.

NumPy's BLAS (OpenBLAS, MKL or BLIS) and Numba each keep a pool of worker threads, by
default one per core. When several ranks compute on one machine, or other programs run
there, those pools oversubscribe the cores: a multi-threaded GEMM waits for its slowest
worker, and a worker that loses its core to another process holds the whole call for a
scheduler time slice (milliseconds), while the others spin. Measured on the 2-core
development VM with one competing CPU-bound process: a pipeline step of two in-process
ranks took 63 ms with OpenBLAS's default two threads and 31 ms with one
(``docs/calibration.md``).

**The policy.** :class:`ThreadPolicy` is the number of BLAS and Numba threads one rank
computes with, a frozen value passed explicitly down to whatever computes. Its default,
:meth:`ThreadPolicy.fair_share`, gives each of P ranks ``max(1, C // P)`` threads on C
usable cores (the rule :mod:`ringpipe.mpi.launch` applies to MPI ranks through
``OPENBLAS_NUM_THREADS``); a count the user asked for (``OPENBLAS_NUM_THREADS``,
``MKL_NUM_THREADS`` or ``OMP_NUM_THREADS``, read by :mod:`ringpipe.environment` and
handed in as ``requested``) wins.

**Applying it.** :func:`limit_threads` sets both pools for the duration of a ``with``
block and restores what they were. BLAS libraries are found among the shared objects
this process has loaded (``/proc/self/maps`` on Linux) and driven through their own C
entry points, the same ones ``threadpoolctl`` calls: OpenBLAS's
``openblas_set_num_threads`` (also with NumPy's ``scipy_openblas`` prefix and the ``64_``
suffixes of its 64-bit-integer builds), MKL's ``MKL_Set_Num_Threads`` and BLIS's
``bli_thread_set_num_threads``. Where none is found (another platform, an unknown
BLAS) only Numba's pool is set; :func:`blas_threads` then answers None. Numba's pool is
set with ``numba.set_num_threads`` (at most ``NUMBA_NUM_THREADS``; it applies to the
calling thread's parallel launches).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import numba

from ringpipe.validation import check_int

__all__ = ["BlasLibrary", "ThreadPolicy", "available_cores", "blas_libraries", "blas_threads",
           "check_threads", "environment_policy", "limit_threads"]

#: (get, set) entry points per BLAS family, tried in this order on each library loaded.
_OPENBLAS = [(f"{p}_get_num_threads{s}", f"{p}_set_num_threads{s}")
             for p in ("openblas", "scipy_openblas") for s in ("", "64_", "_64")]
_ENTRY_POINTS = {"openblas": _OPENBLAS,
                 "mkl": [("MKL_Get_Max_Threads", "MKL_Set_Num_Threads")],
                 "blis": [("bli_thread_get_num_threads", "bli_thread_set_num_threads")]}
_FILE_MARKS = {"openblas": ("openblas",), "mkl": ("mkl_rt", "libmkl"), "blis": ("blis",)}


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - no affinity API (macOS)
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadPolicy:
    """Threads one rank computes with: ``blas`` (the BLAS pool) and ``numba`` (Numba's
    pool), each >= 1; ``reason`` says where the numbers came from (for messages)."""

    blas: int
    numba: int
    reason: str = "given"

    def __post_init__(self) -> None:
        check_int("ThreadPolicy.blas", self.blas)
        check_int("ThreadPolicy.numba", self.numba)

    @classmethod
    def fair_share(cls, ranks: int, cores: int | None = None,
                   requested: int | None = None) -> ThreadPolicy:
        """``requested`` threads if given (the environment's choice), else each of
        ``ranks`` ranks gets ``max(1, cores // ranks)`` of ``cores`` (default: this
        process's usable cores)."""
        check_int("ranks", ranks)
        cores = available_cores() if cores is None else check_int("cores", cores)
        if requested is not None:
            n = check_int("requested threads", requested)
            return cls(n, n, "set by OPENBLAS/MKL/OMP_NUM_THREADS")
        share = max(1, cores // ranks)
        return cls(share, share, f"fair share: {cores} cores / {ranks} ranks")

    @classmethod
    def node_share(cls, local_ranks: int, cores: int | None = None,
                   node_cores: int | None = None) -> ThreadPolicy:
        """The policy an MPI rank computes with when its caller gives none (the
        command-line ranks give the environment's count, :func:`environment_policy`): its
        share of the node, ``max(1, min(cores, node_cores // local_ranks))`` for
        ``local_ranks`` ranks on a node of ``node_cores`` cores (default
        ``os.cpu_count()``) of which this rank may use ``cores`` (default: its affinity),
        but never more threads than the pools have now, so a smaller count set at
        start-up (``OPENBLAS_NUM_THREADS=1``, as :mod:`ringpipe.mpi.launch` sets) still
        holds; a library caller who wants more passes its own policy. Without it, ranks
        started by a plain ``mpiexec`` each keep one BLAS thread per core: two ranks on
        the 2-core development VM took 460–950 ms a step where one thread each took
        21 ms."""
        check_int("local_ranks", local_ranks)
        cores = available_cores() if cores is None else check_int("cores", cores)
        node = (os.cpu_count() or 1) if node_cores is None else check_int("node_cores",
                                                                         node_cores)
        share = max(1, min(cores, node // local_ranks))
        now = blas_threads()
        blas = share if now is None else max(1, min(share, now))
        return cls(blas, max(1, min(share, numba.get_num_threads())),
                   f"fair share: {node} cores / {local_ranks} ranks on this node")

    def describe(self) -> str:
        """``"1 BLAS thread per rank (fair share: 2 cores / 2 ranks)"``."""
        plural = "s" if self.blas > 1 else ""
        return f"{self.blas} BLAS thread{plural} per rank ({self.reason})"


@dataclass(frozen=True)
class BlasLibrary:
    """One loaded BLAS: its family, the file, and its get/set thread-count functions."""

    family: str
    path: str
    get: ctypes._CFuncPtr
    set: ctypes._CFuncPtr

    def threads(self) -> int:
        """The library's current thread count."""
        return int(self.get())

    def set_threads(self, n: int) -> None:
        """Set the library's thread count to ``n``."""
        self.set(ctypes.c_int(n))


def _loaded_paths() -> list[str]:
    """Shared objects mapped into this process (Linux); [] where that is unknown."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    paths = {line.split(maxsplit=5)[5] for line in lines if len(line.split(maxsplit=5)) == 6}
    return sorted(p for p in paths if ".so" in os.path.basename(p))


def _bind(family: str, path: str) -> BlasLibrary | None:
    try:
        lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_GLOBAL)
    except OSError:
        return None
    for get_name, set_name in _ENTRY_POINTS[family]:
        get, put = getattr(lib, get_name, None), getattr(lib, set_name, None)
        if get is not None and put is not None:
            get.restype, get.argtypes = ctypes.c_int, []
            put.restype, put.argtypes = None, [ctypes.c_int]
            return BlasLibrary(family, path, get, put)
    return None


@lru_cache(maxsize=1)
def blas_libraries() -> tuple[BlasLibrary, ...]:
    """The BLAS libraries loaded in this process (module docstring), found once: NumPy
    loads its BLAS when it is imported, before anything here runs."""
    found = []
    for path in _loaded_paths():
        name = os.path.basename(path).lower()
        for family, marks in _FILE_MARKS.items():
            if any(mark in name for mark in marks):
                lib = _bind(family, path)
                if lib is not None:
                    found.append(lib)
                break
    return tuple(found)


def blas_threads() -> int | None:
    """The thread count of the first BLAS loaded (None: none found)."""
    libs = blas_libraries()
    return libs[0].threads() if libs else None


def check_threads(caller: str, threads: object) -> None:
    """TypeError naming ``caller`` unless ``threads`` is None or a ThreadPolicy."""
    if threads is not None and not isinstance(threads, ThreadPolicy):
        raise TypeError(f"{caller}: threads must be a ThreadPolicy, got "
                        f"{type(threads).__name__}")


def environment_policy(requested: int | None) -> ThreadPolicy | None:
    """The policy of a thread count the environment set (``OPENBLAS_NUM_THREADS`` & co.,
    read by :mod:`ringpipe.environment`), or None when it set none."""
    return None if requested is None else ThreadPolicy.fair_share(1, requested=requested)


@contextmanager
def limit_threads(policy: ThreadPolicy) -> Iterator[ThreadPolicy]:
    """Run the ``with`` block with ``policy``'s thread counts, then restore the pools'
    previous counts (module docstring). Yields ``policy``."""
    if not isinstance(policy, ThreadPolicy):
        raise TypeError(f"threads must be a ThreadPolicy, got {type(policy).__name__}")
    saved = [(lib, lib.threads()) for lib in blas_libraries()]
    numba_before = numba.get_num_threads()
    try:
        for lib, _ in saved:
            lib.set_threads(policy.blas)
        numba.set_num_threads(min(policy.numba, numba.config.NUMBA_NUM_THREADS))
        yield policy
    finally:
        for lib, n in saved:
            lib.set_threads(n)
        numba.set_num_threads(numba_before)
