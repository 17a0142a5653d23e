"""Calibrated cluster files: what ``ringpipe verify --cluster-file`` reads.

A calibrated cluster file is an ordinary cluster file (headline keys:
:mod:`ringpipe.cost.hardware.cluster`) plus the ``[measured]`` table ``ringpipe calibrate``
writes (:mod:`ringpipe.cost.clusterfile.measured`). :func:`load_calibrated` reads it through
the same reader and checks as ``ringpipe plan``'s :func:`~ringpipe.cost.clusterfile.load.
load_cluster`, so both commands build the same :class:`~ringpipe.cost.hardware.cluster.Cluster`
from one file, and returns the measured constants beside it
(:class:`~ringpipe.cost.hardware.calibration.Calibration`, re-exported here with
:func:`~ringpipe.cost.clusterfile.measured.calibration_from_dict`).
"""

from __future__ import annotations

import os

from ringpipe.cost.clusterfile.load import read_cluster
from ringpipe.cost.clusterfile.measured import calibration_from_dict
from ringpipe.cost.clusterfile.reader import read_cluster_file
from ringpipe.cost.hardware.calibration import RUNTIMES, Calibration
from ringpipe.cost.hardware.cluster import Cluster

__all__ = ["RUNTIMES", "Calibration", "calibration_from_dict", "load_calibrated"]


def load_calibrated(path: str | os.PathLike[str]) -> tuple[Cluster, Calibration]:
    """The cluster and the measured constants of the calibrated file at ``path``.

    ValueError or TypeError naming the file (and the key) as for
    :func:`~ringpipe.cost.clusterfile.load.load_cluster`, and ValueError when the file has
    no ``[measured]`` table: a plain cluster file, which ``ringpipe calibrate --output
    FILE`` turns into a calibrated one.
    """
    name = os.fspath(path)
    cluster, calibration = read_cluster(read_cluster_file(path), None, name)
    if calibration is None:
        raise ValueError(f"{name}: the cluster file has no [measured] table; verify "
                         "--cluster-file needs a calibrated cluster file, as `ringpipe "
                         "calibrate --output FILE` writes")
    return cluster, calibration
