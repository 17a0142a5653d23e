"""Measurements: every figure ringpipe reports about the machine it runs on.

* :mod:`.timer`: the one timer (per call, best of, sustained, CPU time and share);
* :mod:`.bandwidth`: nccl-tests' algbw/busbw and size sweeps of in-process collectives;
* :mod:`.calibrate`: ``ringpipe calibrate``, this machine's constants for the cost model;
* :mod:`.step_time`: a plan's measured step time against its prediction
  (``ringpipe verify --cluster-file``);
* :mod:`.bench`, :mod:`.bench_mpi`: the rows of ``ringpipe bench``;
* :mod:`.mpi_allreduce`: the MPI all-reduce table (``python -m ringpipe.mpi allreduce``).
"""
