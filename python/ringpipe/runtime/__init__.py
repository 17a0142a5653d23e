"""Runtimes: the one pipeline interpreter, its workers and transports, and :func:`run`.

* :mod:`.interpreter`: :class:`~.interpreter.PipelineInterpreter`, which executes one
  pipeline rank's action list for every runtime;
* :mod:`.training`, :mod:`.inference`: the workers (what F, B, I, W compute; prefill
  and decode with KV caches);
* :mod:`.inproc`, :mod:`.mpi`, :mod:`.inference_mpi`, :mod:`.device`: transports and
  group collectives (in-process queues, MPI, GPU staging and NCCL);
* :mod:`.layer_comm`: the layers' collectives on each runtime (TP all-reduce, the CP
  ring, the EP all-to-all), in-process and over MPI;
* :mod:`.groups`: counted group reductions; :mod:`.result`: what a run returns;
* :mod:`.run`: :func:`run`, one entry point for every runtime.
"""

from ringpipe.runtime.run import BACKENDS, run

__all__ = ["BACKENDS", "run"]
