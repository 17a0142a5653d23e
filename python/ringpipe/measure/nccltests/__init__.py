"""nccl-tests logs into a cluster file: ``ringpipe calibrate --from-nccl-tests``.

* :mod:`.parse` — the strict reader of ``all_reduce_perf``, ``all_gather_perf``,
  ``reduce_scatter_perf``, ``alltoall_perf`` and ``sendrecv_perf`` output;
* :mod:`.fit` — each run's α-β fit and the tier link (inside a node, across nodes) it
  implies for the step-table cost model;
* :mod:`.build` — the cluster file: a preset's GPU numbers, the fitted links, and the
  measured tables the planner prefers over α-β.
"""

from ringpipe.measure.nccltests.build import NcclTestsCluster, cluster_from_runs
from ringpipe.measure.nccltests.parse import NcclTestsRun, parse_log, read_logs

__all__ = ["NcclTestsCluster", "NcclTestsRun", "cluster_from_runs", "parse_log", "read_logs"]
