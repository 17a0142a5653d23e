"""A strict reader of nccl-tests output (``all_reduce_perf``, ``all_gather_perf``,
``reduce_scatter_perf``, ``alltoall_perf``, ``sendrecv_perf``; NVIDIA/nccl-tests,
``src/common.cu`` prints it).

One log holds one or more **runs**. A run starts at the parameter line (or, in a pasted
table without one, at the table header) ``# nThread T nGpus
G minBytes ... maxBytes ...``, lists its ranks (``#  Rank  r Group g Pid p on HOST device
d [bus] NAME``, one per rank; older versions print no ``Group``), prints a table header
whose columns it reads by name (``size count type redop root time algbw busbw #wrong``,
out of place then in place; older versions spell ``error`` for ``#wrong`` and print no
``root``), one row per size, and ends with ``# Out of bounds values`` and ``# Avg bus
bandwidth``. What surrounds runs (the command line, MPI and NCCL messages, ``NCCL
version`` banners) is skipped; Open MPI's ``--tag-output`` prefixes (``[1,0]<stdout>:``)
are removed, and lines tagged ``<stderr>`` are skipped.

**Which test.** The ``# Collective test starting: NAME`` line (nccl-tests 2.13 and
later), else the last ``NAME_perf`` word (a command line) before the run, else the log's
file name; the ``_mpi`` suffix of MPI builds is dropped.

**Ranks and nodes.** Ranks: the highest rank number in the device lines plus one, else
(no device lines: a pasted table) the one count whose bus-bandwidth factor (nccl-tests'
``doc/PERFORMANCE.md``: 2(n-1)/n for all-reduce, (n-1)/n for all-gather, reduce-scatter
and all-to-all) gives the logged busbw/algbw ratio. Nodes: ``nodes_in_log`` when given,
else the number of distinct host names when every rank has its device line.

**Strict.** Refused with a ValueError naming the file and the line: text with no run in
it, a run whose test is unknown or not one of the five read here, a table row whose
fields do not match the header or do not parse, anything else inside a table, a run
cut short (no ``# Avg bus bandwidth`` line), a table with no rows, sizes that do not
increase, and ranks or nodes that cannot be told.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ringpipe.cost.clusterfile.reader import MAX_BYTES
from ringpipe.files import read_text

__all__ = ["COLLECTIVES", "NcclTestsRow", "NcclTestsRun", "busbw_factor", "parse_log",
           "read_logs"]

#: nccl-tests program -> ringpipe's collective name, for the programs read here.
COLLECTIVES = {"all_reduce_perf": "all_reduce", "all_gather_perf": "all_gather",
               "reduce_scatter_perf": "reduce_scatter", "alltoall_perf": "all_to_all",
               "sendrecv_perf": "send_recv"}
_OTHER_TESTS = ("broadcast_perf", "reduce_perf", "gather_perf", "scatter_perf",
                "hypercube_perf", "alltoallv_perf")
_TAG = re.compile(r"^\[\d+,\d+\]<(stdout|stderr)>:")
_PARAMS = re.compile(r"^#?\s*nThread\s+(\d+)\s+nGpus\s+(\d+)\s+minBytes\s+(\d+)")
_DEVICE = re.compile(r"^#?\s*Rank\s+(\d+)\s+(?:Group\s+\d+\s+)?Pid\s+\d+\s+on\s+(\S+)\s+device"
                     r"\s+\d+\s+(?:\[[^\]]*\]\s*)?(.*)$")
_STARTING = re.compile(r"Collective test starting:\s*(\w+)")
_PROGRAM = re.compile(r"((?:all_reduce|all_gather|reduce_scatter|alltoallv|alltoall|sendrecv|"
                      r"broadcast|reduce|gather|scatter|hypercube)_perf)(?:_mpi)?")
_END = ("# Out of bounds values", "# Avg bus bandwidth")


@dataclass(frozen=True)
class NcclTestsRow:
    """One size: bytes, then time (s), algbw and busbw (GB/s) out of place and in place
    (None when the table has no in-place columns)."""

    size: int
    time_s: float
    algbw_gbs: float
    busbw_gbs: float
    in_place_time_s: float | None = None
    in_place_busbw_gbs: float | None = None


@dataclass(frozen=True)
class NcclTestsRun:
    """One test run of a log: where it came from (``source``, ``line``: its first line),
    the nccl-tests program, ringpipe's collective, ranks, nodes and its rows."""

    source: str
    line: int
    test: str
    collective: str
    ranks: int
    nodes: int
    rows: tuple[NcclTestsRow, ...]
    gpu: str = ""  # the GPU model the device lines name ("" without them)

    @property
    def largest(self) -> NcclTestsRow:
        """The row of the largest size."""
        return self.rows[-1]


def busbw_factor(collective: str, ranks: int) -> float:
    """busbw / algbw of ``collective`` on ``ranks`` ranks (nccl-tests' definitions)."""
    n = ranks
    return {"all_reduce": 2.0 * (n - 1) / n, "all_gather": (n - 1) / n,
            "reduce_scatter": (n - 1) / n, "all_to_all": (n - 1) / n,
            "send_recv": 1.0}[collective]


def _clean(raw: str) -> str | None:
    """The line without an Open MPI tag and indentation; None for a stderr line."""
    m = _TAG.match(raw)
    if m:
        if m.group(1) == "stderr":
            return None
        raw = raw[m.end():]
    return raw.strip()


def _test_name(text: str) -> str | None:
    m = _STARTING.search(text)
    if m:
        return m.group(1).removesuffix("_mpi")
    found = _PROGRAM.findall(text)
    return found[-1].removesuffix("_mpi") if found else None


def _is_header(line: str) -> bool:
    """A table header: a comment naming the size, count and time columns."""
    return {"size", "count", "time"} <= set(line.lstrip("#").split())


def _number(where: str, text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: column {name!r} is not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: column {name!r} must be a finite number >= 0, got {text}")
    return value


class _Run:
    """A run being read (module docstring)."""

    def __init__(self, source: str, line: int, test: str | None) -> None:
        self.source, self.line, self.test = source, line, test
        self.hosts: dict[int, str] = {}
        self.gpu = ""
        self.columns: list[str] | None = None
        self.rows: list[NcclTestsRow] = []
        self.last = line

    def header(self, text: str) -> None:
        self.columns = [c.lower() for c in text.lstrip("#").split()]

    def row(self, where: str, text: str) -> None:
        assert self.columns is not None
        fields = text.split()
        if len(fields) != len(self.columns):
            raise ValueError(f"{where}: a table row has {len(fields)} fields but the header "
                             f"names {len(self.columns)} ({' '.join(self.columns)})")
        times = [i for i, c in enumerate(self.columns) if c == "time"]
        if not times or "size" not in self.columns:
            raise ValueError(f"{where}: the table header has no 'size' or 'time' column")

        def at(i: int, name: str) -> float:
            return _number(where, fields[i], name)

        size = at(self.columns.index("size"), "size")
        if not size.is_integer() or size < 1:
            raise ValueError(f"{where}: size must be a whole number of bytes >= 1, got "
                             f"{fields[self.columns.index('size')]}")
        t, alg, bus = (at(times[0] + k, self.columns[times[0] + k]) for k in range(3))
        inplace = (at(times[1], "time") * 1e-6, at(times[1] + 2, "busbw")) \
            if len(times) > 1 else (None, None)
        if self.rows and size <= self.rows[-1].size:
            raise ValueError(f"{where}: size {int(size)} does not increase (the row before "
                             f"has {self.rows[-1].size})")
        if t <= 0:
            raise ValueError(f"{where}: time must be > 0, got {fields[times[0]]}")
        self.rows.append(NcclTestsRow(int(size), t * 1e-6, alg, bus, *inplace))

    def finish(self, nodes_in_log: int | None) -> NcclTestsRun:
        where = f"{self.source}:{self.line}"
        if not self.rows:
            raise ValueError(f"{where}: the run has no table rows")
        test = self.test or _test_name(Path(self.source).name)
        if test is None:
            raise ValueError(f"{where}: cannot tell which nccl-tests program wrote this run "
                             "(no '# Collective test starting' line nor a *_perf command); "
                             "name the file after it, e.g. all_reduce_perf.log")
        if test not in COLLECTIVES:
            known = "one of the tests read" if test in _OTHER_TESTS else "an unknown test"
            raise ValueError(f"{where}: {test} is {known}; supported: "
                             f"{', '.join(COLLECTIVES)}")
        collective = COLLECTIVES[test]
        ranks = self._ranks(where, collective)
        return NcclTestsRun(self.source, self.line, test, collective, ranks,
                            self._nodes(where, ranks, nodes_in_log), tuple(self.rows),
                            self.gpu)

    def _ranks(self, where: str, collective: str) -> int:
        if self.hosts:
            return max(self.hosts) + 1
        row = max(self.rows, key=lambda r: r.algbw_gbs)
        if row.algbw_gbs < 0.1 or collective == "send_recv":
            raise ValueError(f"{where}: no '#  Rank ... on HOST device ...' lines, and the "
                             "rank count cannot be told from the table")
        ratio = row.busbw_gbs / row.algbw_gbs
        # both bandwidths are printed to 0.01 GB/s: the ratio is known this well
        slack = ratio * (0.005 / row.algbw_gbs + 0.005 / max(row.busbw_gbs, 0.01))
        fits = [n for n in range(2, 4097) if abs(busbw_factor(collective, n) - ratio) <= slack]
        if len(fits) != 1:
            raise ValueError(f"{where}: no '#  Rank' device lines, and busbw/algbw = "
                             f"{ratio:.4f} does not tell the rank count (it fits "
                             f"{len(fits)} counts)")
        return fits[0]

    def _nodes(self, where: str, ranks: int, nodes_in_log: int | None) -> int:
        if nodes_in_log is not None:
            if not 1 <= nodes_in_log <= ranks or ranks % nodes_in_log:
                raise ValueError(f"{where}: --nodes-in-log {nodes_in_log} does not divide "
                                 f"the run's {ranks} ranks")
            return nodes_in_log
        if len(self.hosts) != ranks:
            raise ValueError(f"{where}: device lines for {len(self.hosts)} of {ranks} ranks: "
                             "cannot count the nodes; give --nodes-in-log N")
        nodes = len(set(self.hosts.values()))
        if ranks % nodes:
            raise ValueError(f"{where}: {ranks} ranks on {nodes} hosts, not the same number "
                             "on every node; give --nodes-in-log N")
        return nodes


def parse_log(text: str, source: str = "nccl-tests log",
              nodes_in_log: int | None = None) -> tuple[NcclTestsRun, ...]:
    """Every run of the nccl-tests output ``text`` (module docstring); ``source`` (the
    file's name) starts every message, ``nodes_in_log`` gives the node count."""
    runs: list[NcclTestsRun] = []
    run: _Run | None = None
    context: list[str] = []  # text since the last run, for the test's name
    in_table = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _clean(raw)
        where = f"{source}:{number}"
        if line is None or not line:
            continue
        header = line.startswith("#") and _is_header(line)
        if _PARAMS.match(line) or (run is None and header):
            if run is not None:
                raise ValueError(f"{where}: a new run starts before the run of line "
                                 f"{run.line} ended (no '# Avg bus bandwidth' line: cut short?)")
            run, in_table = _Run(source, number, _test_name("\n".join(context))), False
            if not header:
                continue
        if run is None:
            context.append(line)
            continue
        run.last = number
        device = _DEVICE.match(line)
        if device and not in_table:
            run.hosts[int(device.group(1))] = device.group(2)
            run.gpu = device.group(3).strip()
        elif line.startswith(_END):
            if run.columns is None:
                raise ValueError(f"{where}: the run of line {run.line} ends before its table")
            if line.startswith("# Avg bus bandwidth"):
                runs.append(run.finish(nodes_in_log))
                run, context, in_table = None, [], False
        elif line.startswith("#"):
            if header and not in_table:
                run.header(line)
        elif run.columns is not None and line[0].isdigit():
            in_table = True
            run.row(where, line)
        elif in_table:
            raise ValueError(f"{where}: expected a table row or the end of the table, got "
                             f"{line[:60]!r}")
    if run is not None:
        raise ValueError(f"{source}:{run.last}: the log ends inside the run of line "
                         f"{run.line} (no '# Avg bus bandwidth' line: a truncated log?)")
    if not runs:
        raise ValueError(f"{source}:1: not an nccl-tests log: no '# nThread N nGpus G "
                         "minBytes ...' line starts a run")
    return tuple(runs)


def read_logs(paths: Sequence[str], nodes_in_log: int | None = None
              ) -> tuple[NcclTestsRun, ...]:
    """Every run of the logs at ``paths``, read through the safe reader
    (:func:`ringpipe.files.read_text`: regular files of at most the cluster file's
    ``MAX_BYTES``, opened without blocking)."""
    out: list[NcclTestsRun] = []
    for path in paths:
        text = read_text(path, "nccl-tests log", MAX_BYTES, "nccl-tests output")
        out += parse_log(text, str(path), nodes_in_log)
    return tuple(out)
