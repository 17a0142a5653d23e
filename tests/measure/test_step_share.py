"""The CPU share ``verify --cluster-file`` predicts a step with
(:mod:`ringpipe.measure.step_time`): a probe as long as the step, and under MPI the
median of the least-served ranks' shares."""

from __future__ import annotations

import pytest

from ringpipe.measure.step_time import (
    MIN_SHARE_SECONDS,
    SHARE_SECONDS,
    pacing_share,
    share_window,
)


@pytest.mark.parametrize(("step", "window"), [
    (0.0, MIN_SHARE_SECONDS), (0.001, MIN_SHARE_SECONDS), (0.04, 0.04),
    (0.25, 0.25), (2.0, SHARE_SECONDS)])
def test_share_window_follows_the_step_within_its_bounds(step, window):
    assert share_window(step) == window


def test_in_process_pairs_the_best_share_with_the_best_step():
    assert pacing_share([0.5, 0.9, 0.7], "inproc") == 0.9


def test_mpi_takes_the_median_not_the_luckiest_rotation():
    # two ranks and one other busy process on two cores: most probes see the rank that
    # shares a core with it at about half a core; one probe caught a rotation
    shares = [0.51, 0.5, 0.66, 0.49, 0.53]
    assert pacing_share(shares, "mpi") == 0.51
    assert pacing_share(shares, "inproc") == 0.66


def test_no_samples_or_an_unknown_runtime_is_refused():
    with pytest.raises(ValueError, match="no share samples"):
        pacing_share([], "mpi")
    with pytest.raises(ValueError, match="runtime must be 'inproc' or 'mpi', got 'MPI'"):
        pacing_share([0.5], "MPI")


def test_an_mpi_prediction_from_a_file_without_mpi_rows_is_flagged():
    from types import MappingProxyType

    from ringpipe.cost.hardware.calibration import Calibration
    from ringpipe.cost.hardware.cluster import Link
    from ringpipe.measure.step_time import mpi_rows_warning

    inproc_only = Calibration(cores=2, blas_threads=1, call_overhead=1e-6,
                              memory_bandwidth=1e10,
                              p2p=MappingProxyType({"inproc": Link(40e9, 1e-6)}))
    line = mpi_rows_warning(inproc_only, "q.toml")
    assert line is not None and line.startswith("warning: q.toml has no MPI rows")
    assert "--np" in line and "\n" not in line
    with_mpi = Calibration(cores=2, blas_threads=1, call_overhead=1e-6,
                           memory_bandwidth=1e10,
                           p2p=MappingProxyType({"inproc": Link(40e9, 1e-6),
                                                 "mpi": Link(8e9, 5e-6)}))
    assert mpi_rows_warning(with_mpi, "q.toml") is None
