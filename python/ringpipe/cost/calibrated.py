"""Calibrated cluster files: what ``ringpipe verify --cluster-file`` reads.

A calibrated cluster file is an ordinary cluster file (headline keys:
:mod:`ringpipe.cost.cluster`) plus the ``[measured]`` table ``ringpipe calibrate``
writes (:mod:`ringpipe.cost.measured_table`). :func:`load_calibrated` reads it through
the same reader and checks as ``ringpipe plan``'s :func:`~ringpipe.cost.cluster_file.
load_cluster`, so both commands build the same :class:`~ringpipe.cost.cluster.Cluster`
from one file, and returns the measured constants beside it
(:class:`~ringpipe.cost.calibration.Calibration`, re-exported here with
:func:`~ringpipe.cost.measured_table.calibration_from_dict`).
"""

from __future__ import annotations

import os

from ringpipe.cost.calibration import RUNTIMES, Calibration
from ringpipe.cost.cluster import Cluster
from ringpipe.cost.cluster_file import read_cluster
from ringpipe.cost.cluster_reader import read_cluster_file
from ringpipe.cost.measured_table import calibration_from_dict

__all__ = ["RUNTIMES", "Calibration", "calibration_from_dict", "load_calibrated"]


def load_calibrated(path: str | os.PathLike[str]) -> tuple[Cluster, Calibration]:
    """The cluster and the measured constants of the calibrated file at ``path``.

    ValueError or TypeError naming the file (and the key) as for
    :func:`~ringpipe.cost.cluster_file.load_cluster`, and ValueError when the file has
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
