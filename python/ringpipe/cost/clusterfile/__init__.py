"""Cluster files: the one way a cluster (and a calibrated machine) is read and written.

* :mod:`.load`: :func:`load_cluster_file`, the one name for reading a file, into a
  :class:`ClusterFile` (its :class:`~ringpipe.cost.hardware.cluster.Cluster` and, for a
  calibrated file, its :class:`~ringpipe.cost.hardware.calibration.Calibration`);
* :mod:`.reader`: the safe reader (TOML or JSON, refuses FIFOs, devices, binaries);
* :mod:`.section`: checked access to one table, messages naming file and key;
* :mod:`.measured`: the ``[measured]`` table ``ringpipe calibrate`` writes;
* :mod:`.writer`: the TOML writer calibrate uses.
"""

from ringpipe.cost.clusterfile.load import ClusterFile, load_cluster_file, read_cluster

__all__ = ["ClusterFile", "load_cluster_file", "read_cluster"]
