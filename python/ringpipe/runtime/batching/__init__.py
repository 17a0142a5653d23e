"""Continuous batching: an iteration-level scheduler, a paged KV cache, and its runtime.

* :mod:`.policy`: :class:`BatchingPolicy` (the knobs) and :class:`Scheduler` (one run's
  queue, lanes and KV block pool) forming one :class:`Iteration` at a time;
* :mod:`.engine`: :func:`serve`, the loop that drives a scheduler on a clock (an
  iteration's price) with open- or closed-loop arrivals, giving a :class:`ServingTrace`;
  the simulator (:mod:`ringpipe.cost.inference.serving`) and the runtime share it;
* :mod:`.worker`: the pipeline interpreter's worker for those iterations;
* :mod:`.inproc` and :mod:`.mpi`: run a :class:`~ringpipe.plan.serving.ServingPlan` on
  in-process ranks or one MPI process per rank, bit for bit alike.
"""

from ringpipe.runtime.batching.engine import (
    ClosedLoop,
    OpenLoop,
    RequestRecord,
    ServingTrace,
    StagePrice,
    serve,
)
from ringpipe.runtime.batching.policy import BatchingPolicy, Iteration, Request, Scheduler, Segment

__all__ = ["BatchingPolicy", "ClosedLoop", "Iteration", "OpenLoop", "Request", "RequestRecord",
           "Scheduler", "Segment", "ServingTrace", "StagePrice", "serve"]
