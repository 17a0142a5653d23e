"""A cluster file's ``[measured]`` table, as ``ringpipe calibrate`` writes it, read into a
:class:`~ringpipe.cost.hardware.calibration.Calibration`.

A calibrated cluster file is an ordinary cluster file (:mod:`ringpipe.cost.hardware.cluster`)
plus a ``[measured]`` table that the planner does not use and the executable-plan
predictor (:mod:`ringpipe.cost.executable.predict`, ``ringpipe verify --cluster-file``) does::

    [measured]
    host = "ci-box"               # where it was measured
    cores = 2                     # os.cpu_count() there (required)
    blas_threads = 1              # BLAS threads the GEMMs ran with
    backend = "numba"             # calibrate's --backend, quick = false, seconds_taken:
    quick = false                 # informational
    seconds_taken = 6.4
    call_overhead_us = 1.4        # one small array operation
    transcendental_ns = 13.0      # tanh / exp, per element
    action_overhead_us = 40.0     # the interpreter, per F/I/W action
    step_call_overhead_us = 3.0   # one array operation inside a step
    mpi_step_overhead_us = 900.0  # what every MPI step pays once (agreement, barriers)
    tensor_overhead_us = 20.0     # the step's bookkeeping copies: per parameter tensor,
    copy_bandwidth_gbs = 12.0     # and their bandwidth (read + write)
    fresh_memory_ns_per_byte = 0.9  # first touch of freshly mapped memory (page faults)
    memory_bandwidth_gbs = 9.8    # all-core copy, read + write
    [measured.cpu_share]          # share of a core a busy thread got (load)
    inproc = 0.9                  # one process
    mpi = 0.8                     # least-served of mpi_processes ranks (both or neither)
    mpi_processes = 2
    [measured.op_bandwidth]       # one elementwise operation, by bytes it moves
    bytes = [32768, 262144, ...]
    gbs = [80.0, 60.0, ...]
    [measured.gemm.float64]       # rate = peak / (1 + m0/M + n0/N + k0/K); float32 too,
                                  # and float16, bfloat16 on a GPU
    peak_gflops = 31.0
    m0 = 3.1
    n0 = 12.0
    k0 = 9.5
    fixed_us = 1.1                # fitted dispatch cost (kept for reference)
    best_gflops = 29.0            # informational
    shapes = [[16, 16, 16], ...]  # the measured grid
    seconds = [1.2e-6, ...]
    [measured.p2p.inproc]         # one message: alpha + bytes / bandwidth; also p2p.mpi
    latency_us = 0.9
    bandwidth_gbs = 6.1
    sizes = [1024, ...]           # the measured messages
    seconds = [2e-6, ...]
    [[measured.allreduce]]        # one step link per (runtime, algorithm, ranks)
    runtime = "mpi"               # inproc or mpi
    algorithm = "ring"            # ring or tree
    ranks = 2
    latency_us = 12.0             # per step of the step table
    bandwidth_gbs = 2.2
    fit_alpha_us = 24.0           # the fit of the whole all-reduce (informational)
    fit_beta_ns_per_byte = 0.9
    sizes = [1024, ...]           # the measured all-reduces
    seconds = [4e-5, ...]

Every key is optional except ``cores`` (and, in a table that is present, the numbers
that define it: ``peak_gflops``, a link's ``latency_us`` and ``bandwidth_gbs``, an
all-reduce row's ``runtime``, ``algorithm`` and ``ranks``, ``op_bandwidth``'s two
arrays): a hand-written file for a machine you cannot run on may give only what it
knows, and the predictor falls back to the cluster's headline figures
(``peak_tflops``, ``memory_bandwidth_gbs``, ``[intra_node]``, ``[kernels]
launch_overhead_us``) for the rest. Unknown keys, wrong types, non-finite numbers and
out-of-range values are refused naming the file and the key
(:class:`~ringpipe.cost.clusterfile.section.Section`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ringpipe.cost.clusterfile.section import BYTES_MAGNITUDE, MAX_INTEGER, Section
from ringpipe.cost.hardware.calibration import RUNTIMES, AllReduceKey, Calibration
from ringpipe.cost.hardware.cluster import GB, Cluster, Link
from ringpipe.cost.hardware.gemm_curve import GemmCurve
from ringpipe.cost.hardware.gemm_table import GemmTable
from ringpipe.cost.hardware.gpu import MICROSECOND
from ringpipe.kernels.registry import ALGORITHMS
from ringpipe.model.config_checks import DTYPES
from ringpipe.validation import check_int

__all__ = ["MEASURED_KEYS", "calibration_from_dict"]

NS = 1e-9
#: GEMM curves a file may hold: the plans' dtypes, and the 16-bit ones a GPU is
#: calibrated in (``ringpipe calibrate --backend cupy``).
GEMM_DTYPES = (*DTYPES, "float16", "bfloat16")
#: The keys of ``[measured]`` (module docstring).
MEASURED_KEYS = ("host", "cores", "blas_threads", "backend", "quick", "seconds_taken",
                 "call_overhead_us", "memory_bandwidth_gbs", "copy_bandwidth_gbs",
                 "tensor_overhead_us", "step_call_overhead_us", "mpi_step_overhead_us",
                 "transcendental_ns",
                 "fresh_memory_ns_per_byte", "action_overhead_us", "cpu_share",
                 "op_bandwidth", "gemm", "p2p", "allreduce")
_GEMM_KEYS = ("peak_gflops", "m0", "n0", "k0", "fixed_us", "best_gflops", "shapes", "seconds")
_LINK_KEYS = ("latency_us", "bandwidth_gbs", "sizes", "seconds")
_ALLREDUCE_KEYS = ("runtime", "algorithm", "ranks", *_LINK_KEYS, "fit_alpha_us",
                   "fit_beta_ns_per_byte")
_ALLREDUCE_ALGORITHMS = tuple(ALGORITHMS["all_reduce"])


def _points(t: Section, first: str) -> None:
    """Check the optional record of what was measured: ``first`` (``sizes``: numbers >=
    0, or ``shapes``: [M, N, K] triples of sizes >= 1) and ``seconds`` (numbers >= 0),
    of equal length when both are given."""
    count = None
    if first == "shapes" and first in t:
        rows = t.array(first)
        for i, shape in enumerate(rows):
            name = t.label(f"{first}[{i}]")
            if not isinstance(shape, list) or len(shape) != 3:
                raise TypeError(f"{name} must be an array [M, N, K], got {shape!r}")
            for value in shape:
                check_int(name, value, 1, MAX_INTEGER)
        count = len(rows)
    elif first in t:
        count = len(t.reals(first, minimum=0.0))
    if "seconds" in t:
        n = len(t.reals("seconds", minimum=0.0))
        if count is not None and n != count:
            raise ValueError(f"{t.label('seconds')} has {n} entries but {t.name(first)} "
                             f"has {count}")


def _link(t: Section) -> Link:
    _points(t, "sizes")
    return read_link(t)


def read_link(t: Section) -> Link:
    """A link's ``bandwidth_gbs`` (> 0) and ``latency_us`` (>= 0) from table ``t``: the
    one reading of a link, for the headline links and the measured rows alike."""
    return Link(t.real("bandwidth_gbs", unit=GB, positive=True),
                t.real("latency_us", unit=MICROSECOND, minimum=0.0))


def _gemm(t: Section, overhead: float) -> tuple[GemmCurve, GemmTable | None]:
    """The fitted curve, and the measured grid when ``shapes``/``seconds`` hold a full
    one (its times less the per-call ``overhead``)."""
    t.only(_GEMM_KEYS)
    t.real("best_gflops", None, positive=True)
    _points(t, "shapes")
    curve = GemmCurve(t.real("peak_gflops", unit=1e9, positive=True),
                      *(t.real(k, 0.0, minimum=0.0) for k in ("m0", "n0", "k0")),
                      t.real("fixed_us", 0.0, unit=MICROSECOND, minimum=0.0))
    shapes, seconds = t.get("shapes", None), t.get("seconds", None)
    table = None if shapes is None or seconds is None else \
        GemmTable.from_measurements(shapes, seconds, overhead, curve)
    return curve, table


def _allreduce(m: Section) -> dict[AllReduceKey, Link]:
    out: dict[AllReduceKey, Link] = {}
    first: dict[AllReduceKey, str] = {}
    for row in m.tables("allreduce"):
        row.only(_ALLREDUCE_KEYS)
        key = (row.text("runtime", choices=RUNTIMES),
               row.text("algorithm", choices=_ALLREDUCE_ALGORITHMS),
               row.integer("ranks", minimum=2))
        if key in first:
            raise ValueError(f"{m.source}: {row.where} repeats runtime {key[0]!r}, "
                             f"algorithm {key[1]!r}, ranks {key[2]} of {first[key]}")
        first[key] = row.where
        row.real("fit_alpha_us", None, minimum=0.0)
        row.real("fit_beta_ns_per_byte", None, minimum=0.0)
        out[key] = _link(row)
    return out


def _shares(m: Section) -> dict[str, Any]:
    t = m.table("cpu_share")
    t.only(("inproc", "mpi", "mpi_processes"))
    out: dict[str, Any] = {}
    if "inproc" in t:
        out["share_inproc"] = t.real("inproc", positive=True, maximum=1.0)
    if ("mpi" in t) != ("mpi_processes" in t):
        given, other = ("mpi", "mpi_processes") if "mpi" in t else ("mpi_processes", "mpi")
        raise ValueError(f"{t.source}: {t.name(given)} needs {t.name(other)}")
    if "mpi" in t:
        out["share_mpi"] = (t.integer("mpi_processes", minimum=2),
                            t.real("mpi", positive=True, maximum=1.0))
    return out


def _op_bandwidth(m: Section) -> tuple[tuple[float, float], ...]:
    if "op_bandwidth" not in m:
        return ()
    t = m.table("op_bandwidth")
    t.only(("bytes", "gbs"))
    nbytes = t.reals("bytes", positive=True, magnitude=BYTES_MAGNITUDE)
    rates = t.reals("gbs", unit=GB, positive=True)
    if len(nbytes) != len(rates) or not nbytes:
        raise ValueError(f"{t.source}: {t.name('bytes')} and {t.name('gbs')} must be "
                         f"non-empty arrays of equal length, got {len(nbytes)} and "
                         f"{len(rates)} entries")
    return tuple(sorted(zip(nbytes, rates, strict=True)))


def calibration_from_dict(measured: Mapping[str, Any], cluster: Cluster,
                          source: str = "cluster file") -> Calibration:
    """The :class:`Calibration` of a ``[measured]`` table (module docstring); absent
    constants fall back to ``cluster``'s. TypeError/ValueError naming ``source`` and
    the key (``measured.<...>``) when a value is missing, unknown or malformed."""
    m = Section({}, source).wrap(measured, "measured")
    m.only(MEASURED_KEYS)
    host, cores, blas = m.text("host", ""), m.integer("cores"), m.integer("blas_threads", 1)
    m.text("backend", None)  # informational: calibrate's --backend, --quick, duration
    m.flag("quick", False)
    m.real("seconds_taken", None, minimum=0.0)
    scalars = dict(
        call_overhead=m.real("call_overhead_us", cluster.kernels.launch_overhead, unit=MICROSECOND,
                             minimum=0.0),
        memory_bandwidth=m.real("memory_bandwidth_gbs", cluster.memory_bandwidth, unit=GB,
                                positive=True),
        copy_bandwidth=m.real("copy_bandwidth_gbs", None, unit=GB, positive=True),
        tensor_overhead=m.real("tensor_overhead_us", None, unit=MICROSECOND, minimum=0.0),
        step_call_overhead=m.real("step_call_overhead_us", None, unit=MICROSECOND,
                                  minimum=0.0),
        mpi_step_overhead=m.real("mpi_step_overhead_us", 0.0, unit=MICROSECOND, minimum=0.0),
        transcendental=m.real("transcendental_ns", 0.0, unit=NS, minimum=0.0),
        fresh_memory=m.real("fresh_memory_ns_per_byte", 0.0, unit=NS, minimum=0.0),
        action_overhead=m.real("action_overhead_us", None, unit=MICROSECOND, minimum=0.0))
    shares = _shares(m)
    op_bandwidth = _op_bandwidth(m)
    gemm_tables = m.table("gemm")
    gemm_tables.only(GEMM_DTYPES)
    fits = {dtype: _gemm(gemm_tables.table(dtype), scalars["call_overhead"])
            for dtype in gemm_tables}
    gemm = {dtype: curve for dtype, (curve, _) in fits.items()}
    grids = {dtype: table for dtype, (_, table) in fits.items() if table is not None}
    p2p_tables = m.table("p2p")
    p2p_tables.only(RUNTIMES)
    p2p = {}
    for runtime in p2p_tables:
        link = p2p_tables.table(runtime)
        link.only(_LINK_KEYS)
        p2p[runtime] = _link(link)
    return Calibration(cores=cores, blas_threads=blas, host=host,
                       gemm=MappingProxyType(gemm), gemm_tables=MappingProxyType(grids),
                       p2p=MappingProxyType(p2p),
                       allreduce=MappingProxyType(_allreduce(m)),
                       op_bandwidth=op_bandwidth, **scalars, **shares)
