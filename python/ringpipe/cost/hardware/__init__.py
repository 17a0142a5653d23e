"""The hardware the cost model prices on, and its presets.

* :mod:`.cluster`: :class:`Cluster` (GPUs, HBM, intra- and inter-node links, per GPU,
  each way) and the presets (``dgx-a100``, ``dgx-h100``, ``dgx-h200``, ``pcie-a100``);
* :mod:`.gpu`: how fast one GPU runs one kernel (GEMM roofline with tile and wave
  quantisation, flash attention, memory-bound kernels, launch overhead);
* :mod:`.gemm_curve`: a measured GEMM efficiency curve (calibrated CPUs);
* :mod:`.collectives`: α-β collective costs read off the kernels' step tables, and
  :func:`choose_algorithm` for a cluster's links;
* :mod:`.calibration`: one machine's measured constants (:class:`Calibration`), what
  ``ringpipe calibrate`` writes into a cluster file's ``[measured]`` table.
"""

from ringpipe.cost.hardware.calibration import Calibration
from ringpipe.cost.hardware.cluster import CLUSTER_PRESETS, Cluster, Link, cluster_preset
from ringpipe.cost.hardware.collectives import CollectiveModel, choose_algorithm

__all__ = ["CLUSTER_PRESETS", "Calibration", "Cluster", "CollectiveModel", "Link",
           "choose_algorithm", "cluster_preset"]
