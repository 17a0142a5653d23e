"""``ringpipe calibrate``: measure this machine once, then plan and predict against it.

* :mod:`.timing` — best-of-n timing within a budget;
* :mod:`.compute` — GEMM curve, memory bandwidth, per-call overhead;
* :mod:`.links` — α-β fits, step links, in-process point-to-point and all-reduce;
* :mod:`.mpi_probe` — the same between MPI processes (started with mpiexec);
* :mod:`.run` — the phases, building the cluster file;
* :mod:`.toml_out`, :mod:`.summary` — writing the file and the human summary;
* :mod:`.timed` — measured versus predicted step time of a plan (``verify --cluster-file``).
"""

from ringpipe.measure.calibrate.run import CalibrateOptions, calibrate

__all__ = ["CalibrateOptions", "calibrate"]
