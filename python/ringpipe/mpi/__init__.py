"""ringpipe over real processes: MPI (mpi4py + MPICH, the ``ringpipe[mpi]`` extra).

Every module here imports :mod:`mpi4py` lazily, inside the functions that need it, so
``import ringpipe`` and ``import ringpipe.mpi`` work without the extra; the launcher
(:mod:`.launch`) needs only an ``mpiexec`` executable.

- :mod:`.loader`: import ``mpi4py.MPI`` with a helpful error;
- :mod:`.launch`: find ``mpiexec`` and start jobs on this machine (used by
  ``ringpipe verify --backend mpi``, the tests and the benchmarks);
- :mod:`.guard`: a failing rank prints ``rank R: <error>`` and aborts the whole job;
- :mod:`.watchdog`: ``--timeout`` aborts a wedged job; ranks exit when the launcher dies;
- :mod:`.engine`: runs a collective's step table over point-to-point messages,
  pipelined in segments;
- :mod:`.group`: :class:`ProcessGroup`, the collectives on one communicator;
- :mod:`.mesh_comm`: :class:`MeshComm`, the mesh's TP, PP and DP groups as
  sub-communicators;
- :mod:`.perf`: an nccl-tests style all-reduce benchmark over MPI;
- :mod:`.verify`: a plan run on MPI ranks checked against the reference and the
  in-process runtime; the process runtime itself is :mod:`ringpipe.runtime.mpi`.

Launch: ``mpiexec -n 8 python -m ringpipe.mpi verify --tp 2 --pp 2 --dp 2`` or
``ringpipe verify --backend mpi --np 8 --tp 2 --pp 2 --dp 2``.
"""

from ringpipe.mpi.group import ProcessGroup
from ringpipe.mpi.launch import find_mpiexec, launch, mpiexec_command
from ringpipe.mpi.mesh_comm import MeshComm

__all__ = ["MeshComm", "ProcessGroup", "find_mpiexec", "launch", "mpiexec_command"]
