"""No part of a predicted step is ever negative, whatever the cluster file says within
its valid range: each term is computed directly, never as a difference of two large
numbers (``compute = busy - tp_comm`` gave -0.23 s of compute next to a step of 8e27 s
when ``[inter_node] bandwidth_gbs = 1e-30``; that value is now refused, and 1e-9, the
smallest taken, is among the extremes drawn here)."""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringpipe.cli import main
from ringpipe.cost.clusterfile.load import read_cluster
from ringpipe.cost.clusterfile.writer import dumps
from ringpipe.cost.inference.model import InferenceModel
from ringpipe.cost.inference.workload import Workload
from ringpipe.cost.training.prediction import Config
from ringpipe.cost.training.spec import TrainingSpec
from ringpipe.cost.training.step_time import StepModel
from ringpipe.mesh import Mesh
from ringpipe.model.presets import gpt_like

MODEL = gpt_like("tiny", 8, 512, 8, 256, 32000)
BASE = {"name": "x", "nodes": 2, "gpus_per_node": 4, "peak_tflops": 312.0,
        "memory_gib": 80.0, "memory_bandwidth_gbs": 2039.0,
        "intra_node": {"bandwidth_gbs": 300.0, "latency_us": 2.0},
        "inter_node": {"bandwidth_gbs": 25.0, "latency_us": 6.0},
        "kernels": {"saturation": 144.0, "launch_overhead_us": 3.0}}

#: The extremes of the range a cluster file takes (file units), and ordinary values.
extreme = st.sampled_from([1e-9, 1e-6, 1e-3, 1.0, 25.0, 1e3, 1e6, 1e9])
latency = st.sampled_from([0.0, 1e-9, 1.0, 1e6, 1e9])
fraction = st.sampled_from([1e-9, 1e-3, 0.5, 1.0])

CONFIGS = [Config(Mesh(dp=2, pp=2, tp=2), "1f1b", 1, None, "none"),
           Config(Mesh(dp=1, pp=4, tp=2), "interleaved-1f1b", 2, 2, "full"),
           Config(Mesh(dp=4, pp=2, tp=1), "zb-v", 1, None, "selective")]


def _cluster(values: dict) -> object:
    data = copy.deepcopy(BASE)
    data.update(peak_tflops=values["peak"], memory_bandwidth_gbs=values["hbm"],
                achievable_fraction=values["fraction"])
    intra, inter = sorted((values["link_a"], values["link_b"]), reverse=True)
    data["intra_node"] = {"bandwidth_gbs": intra, "latency_us": values["lat_a"]}
    data["inter_node"] = {"bandwidth_gbs": inter, "latency_us": values["lat_b"]}
    data["kernels"] = {"saturation": values["saturation"],
                       "launch_overhead_us": values["launch"],
                       "flash_fraction": values["flash"]}
    return read_cluster(data).cluster


@given(st.fixed_dictionaries({
    "peak": extreme, "hbm": extreme, "fraction": fraction, "link_a": extreme,
    "link_b": extreme, "lat_a": latency, "lat_b": latency, "saturation": latency,
    "launch": latency, "flash": fraction}))
def test_no_part_of_a_step_is_ever_negative(values):
    cluster = _cluster(values)
    step = StepModel(MODEL, TrainingSpec(64), cluster)
    for config in CONFIGS:
        pred = step.predict(config)
        parts = pred.breakdown_s
        assert all(math.isfinite(v) and v >= 0 for v in parts.values()), parts
        assert pred.step_time >= max(pred.parts().values())
    serving = InferenceModel(MODEL, cluster).predict(Mesh(pp=2, tp=4),
                                                     Workload(128, 16, 8, "bf16"))
    assert all(math.isfinite(v) and v >= 0 for v in serving.breakdown_s.values())


def test_compute_is_summed_directly():
    """The reproducer's shape: a link so slow that communication is 1e20 times the
    compute; compute is still the compute, not rounding noise of a difference."""
    slow = _cluster({"peak": 312.0, "hbm": 2039.0, "fraction": 0.7, "link_a": 300.0,
                     "link_b": 1e-9, "lat_a": 2.0, "lat_b": 6.0, "saturation": 144.0,
                     "launch": 3.0, "flash": 0.6})
    fast = _cluster({"peak": 312.0, "hbm": 2039.0, "fraction": 0.7, "link_a": 300.0,
                     "link_b": 25.0, "lat_a": 2.0, "lat_b": 6.0, "saturation": 144.0,
                     "launch": 3.0, "flash": 0.6})
    config = Config(Mesh(dp=1, pp=2, tp=4), "1f1b", 1, None, "none")  # pp crosses nodes
    a = StepModel(MODEL, TrainingSpec(64), slow).predict(config)
    b = StepModel(MODEL, TrainingSpec(64), fast).predict(config)
    assert a.step_time > 1e6 * b.step_time
    assert a.compute_time == pytest.approx(b.compute_time, rel=1e-12)  # the same kernels


def test_the_reproducer_value_is_refused_naming_the_key(tmp_path, capsys):
    data = copy.deepcopy(BASE)
    data["inter_node"]["bandwidth_gbs"] = 1e-30
    path = tmp_path / "slow.toml"
    path.write_text(dumps(data))
    assert main(["plan", "--model", "gpt3-175b", "--cluster-file", str(path),
                 "--global-batch", "64"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "inter_node.bandwidth_gbs = 1e-30 is out of range" in err
