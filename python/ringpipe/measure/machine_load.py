"""Was the machine busy while we measured? Load average, steal and other processes' CPU.

A timing ratio measured while other processes compete for the cores measures the
scheduler, not ringpipe. Linux reports what happened (``proc(5)``):

* ``/proc/stat``'s first line: jiffies (``os.sysconf("SC_CLK_TCK")`` per second) every
  core spent in user, nice, system, idle, iowait, irq, softirq and **steal** (time the
  hypervisor ran someone else on this virtual CPU) since boot;
* ``/proc/loadavg``: the 1-minute load average (runnable and waiting tasks);
* ``os.times()``: this process's CPU time and its waited-for children's (the MPI jobs).

:func:`sample` reads them; :func:`between` turns two samples into a :class:`MachineLoad`:
the fraction of the machine's CPU capacity used by *other* processes (busy jiffies
minus our own), the steal fraction, and the load average. It is **busy** when others
used more than :data:`OTHERS_LIMIT` of the capacity or steal exceeded
:data:`STEAL_LIMIT`. Where ``/proc`` does not exist (macOS) nothing is known and
:func:`sample` returns None.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OTHERS_LIMIT", "STEAL_LIMIT", "MachineLoad", "CpuSample", "between", "sample"]

#: Other processes' share of the CPU capacity above which the machine counts as busy.
OTHERS_LIMIT = 0.15
#: Steal above which the machine counts as busy (a neighbour on the hypervisor).
STEAL_LIMIT = 0.05


@dataclass(frozen=True)
class CpuSample:
    """Jiffies since boot (all cores): total, busy (not idle, iowait or steal), steal;
    our CPU seconds (with waited-for children); the 1-minute load average."""

    total: int
    busy: int
    steal: int
    own_s: float
    load1: float


@dataclass(frozen=True)
class MachineLoad:
    """What other work did between two samples (module docstring)."""

    others: float
    steal: float
    load1: float
    cores: int

    @property
    def busy(self) -> bool:
        """Whether timings from this interval should not count as misses."""
        return self.others > OTHERS_LIMIT or self.steal > STEAL_LIMIT

    def describe(self) -> str:
        """``load average 11.0 on 2 cores, other processes used 83% of the CPU, steal 0%``."""
        return (f"load average {self.load1:.1f} on {self.cores} cores, other processes used "
                f"{self.others:.0%} of the CPU, steal {self.steal:.0%}")


def sample(proc: Path = Path("/proc")) -> CpuSample | None:
    """Read the counters now (None without ``/proc/stat``)."""
    try:
        fields = (proc / "stat").read_text().splitlines()[0].split()
        load1 = float((proc / "loadavg").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    if fields[0] != "cpu":
        return None
    ticks = [int(x) for x in fields[1:9]] + [0] * max(0, 8 - len(fields[1:9]))
    user, nice, system, idle, iowait, irq, softirq, steal = ticks[:8]
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return CpuSample(total, user + nice + system + irq + softirq, steal, own, load1)


def between(start: CpuSample | None, end: CpuSample | None, cores: int) -> MachineLoad | None:
    """The load from ``start`` to ``end`` (None when either is unknown or no time passed)."""
    if start is None or end is None or end.total <= start.total:
        return None
    capacity = end.total - start.total
    own = (end.own_s - start.own_s) * os.sysconf("SC_CLK_TCK")
    others = max(0.0, (end.busy - start.busy) - own) / capacity
    return MachineLoad(min(others, 1.0), (end.steal - start.steal) / capacity, end.load1, cores)
