"""The measured GEMM grid (cost.hardware.gemm_table): exact at its points, log-linear
between them, the fitted curve's trend beyond them, and what the predictor prices with."""

from __future__ import annotations

import itertools
import math

import pytest

from ringpipe.cost.clusterfile.load import load_cluster_file
from ringpipe.cost.clusterfile.writer import dumps
from ringpipe.cost.executable.numpy_ops import OpList
from ringpipe.cost.executable.pricer import Pricer
from ringpipe.cost.hardware.gemm_curve import GemmCurve, fit_gemm_curve
from ringpipe.cost.hardware.gemm_table import MIN_COMPUTE_FRACTION, GemmTable

SIZES = (16, 96, 384)
OVERHEAD = 1e-6


def grid(seconds_of):
    shapes = list(itertools.product(SIZES, repeat=3))
    return shapes, [seconds_of(*s) for s in shapes]


def power_law(m, n, k):
    """A BLAS at 20 GFLOP/s for every shape, plus the call overhead."""
    return 2.0 * m * n * k / 20e9 + OVERHEAD


def test_grid_points_are_the_measured_times():
    rng_times = {}

    def uneven(m, n, k):  # a rate that is no saturating curve: thin M is slow
        rate = 25e9 if m == 16 and k >= 96 else 45e9
        t = 2.0 * m * n * k / rate + OVERHEAD
        rng_times[(m, n, k)] = t
        return t

    shapes, seconds = grid(uneven)
    curve = fit_gemm_curve(shapes, seconds)
    table = GemmTable.from_measurements(shapes, seconds, OVERHEAD, curve)
    for (m, n, k), t in rng_times.items():
        compute = max(t - OVERHEAD, MIN_COMPUTE_FRACTION * t)
        assert table.time(m, n, k) == pytest.approx(compute, rel=1e-12)
    # the fit cannot follow the thin-M dip; the table does
    assert curve.time(16, 384, 384) < 0.9 * table.time(16, 384, 384)


def test_between_points_a_power_law_is_reproduced():
    shapes, seconds = grid(power_law)
    table = GemmTable.from_measurements(shapes, seconds, OVERHEAD, fit_gemm_curve(shapes,
                                                                                  seconds))
    for m, n, k in [(32, 200, 50), (16, 128, 384), (300, 17, 100)]:
        assert table.rate(m, n, k) == pytest.approx(20e9, rel=1e-9)


def test_beyond_the_grid_the_curve_carries_the_trend():
    shapes, seconds = grid(power_law)
    curve = GemmCurve(40e9, 30.0, 20.0, 10.0)
    table = GemmTable.from_measurements(shapes, seconds, OVERHEAD, curve)
    inside = table.rate(384, 384, 384)
    assert table.rate(1024, 2048, 384) == pytest.approx(
        inside * curve.rate(1024, 2048, 384) / curve.rate(384, 384, 384), rel=1e-12)
    assert table.rate(4, 96, 96) == pytest.approx(
        table.rate(16, 96, 96) * curve.rate(4, 96, 96) / curve.rate(16, 96, 96), rel=1e-12)


@pytest.mark.parametrize("change", ["drop one", "repeat one", "lengths", "zero time"])
def test_anything_but_a_full_grid_gives_no_table(change):
    shapes, seconds = grid(power_law)
    if change == "drop one":
        shapes, seconds = shapes[1:], seconds[1:]
    elif change == "repeat one":
        shapes[1] = shapes[0]
    elif change == "lengths":
        seconds = seconds[:-1]
    else:
        seconds[3] = 0.0
    assert GemmTable.from_measurements(shapes, seconds, OVERHEAD, GemmCurve(1e9)) is None


def test_bad_tables_and_shapes_are_refused():
    with pytest.raises(ValueError, match="axes"):
        GemmTable(((16, 8), (16,), (16,)), (0.0, 0.0), GemmCurve(1e9))
    with pytest.raises(ValueError, match="one entry per grid point"):
        GemmTable(((16,), (16,), (16,)), (0.0, 1.0), GemmCurve(1e9))
    shapes, seconds = grid(power_law)
    table = GemmTable.from_measurements(shapes, seconds, OVERHEAD, GemmCurve(1e9))
    with pytest.raises(ValueError, match="dimensions must be > 0"):
        table.rate(0, 16, 16)


def test_a_calibrated_file_prices_gemms_on_its_grid(tmp_path):
    """The predictor's GEMM price follows the file's measured seconds, not only its fit:
    doubling every measured time (same fitted constants) doubles the compute part."""
    shapes, seconds = grid(power_law)
    gemm = {"peak_gflops": 20.0, "m0": 0.0, "n0": 0.0, "k0": 0.0,
            "shapes": [list(s) for s in shapes], "seconds": seconds}
    data = {"name": "t", "gpus_per_node": 1, "peak_tflops": 0.02, "memory_gib": 4.0,
            "memory_bandwidth_gbs": 1e6, "achievable_fraction": 1.0,
            "intra_node": {"bandwidth_gbs": 10.0, "latency_us": 1.0},
            "inter_node": {"bandwidth_gbs": 10.0, "latency_us": 1.0},
            "measured": {"cores": 1, "call_overhead_us": OVERHEAD * 1e6,
                         "gemm": {"float64": gemm}}}
    times = []
    for scale in (1.0, 2.0):
        gemm["seconds"] = [scale * t - (scale - 1.0) * OVERHEAD for t in seconds]
        path = tmp_path / f"c{scale}.toml"
        path.write_text(dumps(data))
        cluster, cal = load_cluster_file(path).calibrated()
        assert "float64" in cal.gemm_tables
        ops = OpList()
        ops.gemm(16, 512, 128)
        ops.gemm(128, 512, 16)
        pricer = Pricer(cluster, cal, "inproc", "float64")
        times.append(pricer.compute(ops) - 2 * cal.call_overhead)
    assert times[1] == pytest.approx(2 * times[0], rel=1e-9)
    assert math.isfinite(times[0]) and times[0] > 0
