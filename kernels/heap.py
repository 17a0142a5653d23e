"""The C allocator's treatment of freed array memory during a step, held steady.

NumPy takes every array's memory from ``malloc``. glibc's allocator gives back to the
kernel what it frees: an allocation above its mmap threshold (128 KiB at first, rising
with what is freed) is its own mapping, unmapped on ``free``, and the top of the heap is
trimmed whenever more than the trim threshold (twice the mmap threshold) lies free there
(``mallopt(3)``). A training step allocates and frees activations, temporaries and
gradients of the same few sizes over and over, so memory goes back to the kernel and
comes back, page fault by page fault, many times a step. Measured on the 2-core
development VM, for the README's pipeline (``--pp 2 --microbatches 4 --hidden 128``, one
step): 5,800 minor faults, about three times the pages the step holds at its peak, and
16–24 ms of its 37–48 ms in the kernel; with the policy below, the faults after the first
step fell to nothing, and the step to 28–33 ms. Page faults are also the part of a step
that another virtual machine on the same host slows the most (the kernel zeroes every
page it hands out), so they made the step time swing by a third from run to run.

**The policy.** :class:`HeapPolicy` raises both thresholds for the duration of a ``with``
block (:func:`retained_heap`, as :func:`~ringpipe.kernels.threads.limit_threads` is for
thread pools): arrays up to ``mmap_threshold`` bytes come from the heap, and the heap is
not trimmed while the block is held, so what one micro-batch frees the next reuses. The
runtimes hold one around every step (``Plan.run``, :func:`ringpipe.runtime.mpi.run_plan_mpi`);
a training loop that holds one around all its steps, as the timing loops of ``ringpipe
verify`` and ``ringpipe calibrate`` do, also keeps the memory between steps, and after
the first step a step first-touches nothing: the executable predictor then charges no
fresh memory (:mod:`ringpipe.cost.executable.predict`). PyTorch's caching allocator
keeps freed device memory the same way.

Blocks nest: the thresholds are the C library's, one per process, and cannot be read
back, so the first block in sets them and the last one out restores glibc's defaults
(glibc has no call that turns its *dynamic* mmap threshold back on: after the first
block it stays at the 128 KiB default instead of rising). What is freed after that may
be trimmed again.

On a C library other than glibc (``os.confstr("CS_GNU_LIBC_VERSION")`` absent) the block
changes nothing; :func:`heap_is_tunable` says which.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from ringpipe.validation import check_int

__all__ = ["GLIBC_DEFAULT_THRESHOLD", "HeapPolicy", "heap_is_tunable", "retained_heap"]

#: glibc's ``mallopt`` parameters (``malloc.h``) and the default both thresholds start at.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
GLIBC_DEFAULT_THRESHOLD = 128 * 1024
#: glibc's largest accepted mmap threshold on 64-bit builds (DEFAULT_MMAP_THRESHOLD_MAX).
MAX_MMAP_THRESHOLD = 32 * 1024 * 1024


@dataclass(frozen=True)
class HeapPolicy:
    """What a step's allocations do (module docstring): ``retain`` freed memory in the
    process while the step runs; arrays up to ``mmap_threshold`` bytes come from the
    heap (at most glibc's 32 MiB), and the heap is trimmed only above
    ``trim_threshold`` bytes free at its top."""

    retain: bool = True
    mmap_threshold: int = MAX_MMAP_THRESHOLD
    trim_threshold: int = 1 << 30

    def __post_init__(self) -> None:
        if not isinstance(self.retain, bool):
            raise TypeError(f"HeapPolicy.retain must be a bool, got "
                            f"{type(self.retain).__name__}")
        check_int("HeapPolicy.mmap_threshold", self.mmap_threshold, GLIBC_DEFAULT_THRESHOLD,
                  MAX_MMAP_THRESHOLD)
        check_int("HeapPolicy.trim_threshold", self.trim_threshold, GLIBC_DEFAULT_THRESHOLD,
                  2**31 - 1)


@lru_cache(maxsize=1)
def _mallopt() -> ctypes._CFuncPtr | None:
    """glibc's ``mallopt``, or None on another C library."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        fn = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, ValueError):
        return None
    fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_int, ctypes.c_int]
    return fn


def heap_is_tunable() -> bool:
    """Whether this process's C library is glibc, whose thresholds the policy sets."""
    return _mallopt() is not None


class _Holders:
    """How many ``retained_heap`` blocks hold the process's thresholds now. The
    thresholds are the C library's, one per process, and cannot be read back, so a
    block inside another (``ringpipe calibrate`` runs plans while it measures) must not
    restore the defaults under the outer one: the first block in sets them, the last
    one out restores them."""

    lock = threading.Lock()
    count = 0


@contextmanager
def retained_heap(policy: HeapPolicy) -> Iterator[bool]:
    """Run the ``with`` block under ``policy`` (module docstring); yields whether the
    thresholds are raised during it (False: ``retain`` off, or not glibc). Inside
    another such block the outer block's thresholds hold."""
    if not isinstance(policy, HeapPolicy):
        raise TypeError(f"heap must be a HeapPolicy, got {type(policy).__name__}")
    mallopt = _mallopt() if policy.retain else None
    if mallopt is None:
        yield False
        return
    with _Holders.lock:
        if _Holders.count == 0:
            mallopt(M_MMAP_THRESHOLD, policy.mmap_threshold)
            mallopt(M_TRIM_THRESHOLD, policy.trim_threshold)
        _Holders.count += 1
    try:
        yield True
    finally:
        with _Holders.lock:
            _Holders.count -= 1
            if _Holders.count == 0:
                mallopt(M_TRIM_THRESHOLD, GLIBC_DEFAULT_THRESHOLD)
                mallopt(M_MMAP_THRESHOLD, GLIBC_DEFAULT_THRESHOLD)
