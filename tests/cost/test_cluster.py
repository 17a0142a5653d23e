"""Cluster descriptions: presets, TOML/JSON files, validation."""

import json
import math

import pytest

from ringpipe.cost.clusterfile.load import load_cluster_file, read_cluster
from ringpipe.cost.hardware.cluster import (
    CLUSTER_PRESETS,
    GB,
    GIB,
    Cluster,
    Link,
    cluster_preset,
)

TOML = """
name = "lab"
gpus_per_node = 4
nodes = 3
peak_tflops = 100
memory_gib = 40
memory_bandwidth_gbs = 1500
[intra_node]
bandwidth_gbs = 50
latency_us = 3
[inter_node]
bandwidth_gbs = 12.5
latency_us = 7
"""


def test_presets_hold_the_issue_numbers():
    a100 = cluster_preset("dgx-a100", 4)
    assert (a100.nodes, a100.gpus_per_node, a100.world) == (4, 8, 32)
    assert a100.peak_flops == 312e12 and a100.memory_bytes == 80 * GIB
    assert a100.intra.bandwidth == 300 * GB
    assert a100.inter.bandwidth * 8 == pytest.approx(8 * 200e9 / 8)  # 8 x 200 Gb/s per node
    h100 = cluster_preset("dgx-h100")
    assert h100.peak_flops == 989e12 and h100.intra.bandwidth == 450 * GB
    assert h100.inter.bandwidth * 8 == pytest.approx(8 * 400e9 / 8)
    pcie = cluster_preset("pcie-a100")
    assert pcie.intra.bandwidth == 32 * GB
    assert set(CLUSTER_PRESETS) == {"dgx-a100", "dgx-h100", "pcie-a100", "dgx-h200"}


def test_toml_file_round_trips(tmp_path):
    path = tmp_path / "lab.toml"
    path.write_text(TOML)
    cluster = load_cluster_file(path).cluster
    assert (cluster.name, cluster.nodes, cluster.gpus_per_node) == ("lab", 3, 4)
    assert cluster.peak_flops == 100e12 and cluster.memory_bytes == 40 * GIB
    assert cluster.inter == Link(12.5 * GB, 7e-6)
    assert load_cluster_file(path, nodes=5).cluster.nodes == 5
    again = tmp_path / "lab.json"
    again.write_text(json.dumps(cluster.to_dict()))
    assert load_cluster_file(again).cluster == cluster


def test_node_of_and_link_time():
    c = cluster_preset("dgx-a100", 2)
    assert [c.node_of(g) for g in (0, 7, 8, 15)] == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="out of range"):
        c.node_of(16)
    assert c.intra.time(0) == 0.0
    assert math.isclose(c.intra.time(300e9), 1 + 2e-6)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown preset 'dgx-b200'.*dgx-a100"):
        cluster_preset("dgx-b200")


@pytest.mark.parametrize("field, value, error, match", [
    ("nodes", 0, ValueError, "Cluster.nodes must be >= 1"),
    ("gpus_per_node", 2.5, TypeError, "Cluster.gpus_per_node must be an int"),
    ("peak_flops", -1.0, ValueError, "Cluster.peak_flops must be > 0"),
    ("memory_bytes", 0, ValueError, "Cluster.memory_bytes must be > 0"),
    ("memory_bandwidth", float("nan"), ValueError, "memory_bandwidth must be finite"),
    ("achievable_fraction", 1.5, ValueError, "achievable_fraction must be in"),
])
def test_bad_numbers_name_the_field(field, value, error, match):
    good = cluster_preset("dgx-a100")
    kwargs = {f: getattr(good, f) for f in good.__dataclass_fields__}
    kwargs[field] = value
    with pytest.raises(error, match=match):
        Cluster(**kwargs)


def test_inconsistent_links_are_refused():
    with pytest.raises(ValueError, match="inter.bandwidth .* exceeds Cluster.intra.bandwidth"):
        Cluster("x", 2, 8, 1e12, GIB, GB, Link(10 * GB, 1e-6), Link(20 * GB, 1e-6))
    with pytest.raises(ValueError, match="Link.bandwidth must be > 0"):
        Link(0, 1e-6)
    with pytest.raises(ValueError, match="Link.latency must be >= 0"):
        Link(1.0, -1e-6)


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.pop("peak_tflops"), "missing peak_tflops"),
    (lambda d: d.update(peak_tflop=3), "unknown key 'peak_tflop'"),
    (lambda d: d["inter_node"].update(bandwidth_gbs=-1), "inter_node.bandwidth_gbs must be > 0"),
    (lambda d: d["intra_node"].pop("latency_us"), "missing intra_node.latency_us"),
    (lambda d: d.update(memory_gib="80"), "memory_gib must be a number"),
    (lambda d: d.update(gpus_per_node=0), "gpus_per_node must be >= 1"),
])
def test_bad_files_name_the_key(edit, match):
    data = cluster_preset("dgx-a100").to_dict()
    edit(data)
    with pytest.raises((ValueError, TypeError), match=match):
        read_cluster(data)


def test_unreadable_or_unparsable_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        load_cluster_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("gpus_per_node = = 8")
    with pytest.raises(ValueError, match="does not parse"):
        load_cluster_file(bad)


def test_kernels_table_overrides_the_gemm_model(tmp_path):
    path = tmp_path / "k.toml"
    path.write_text(TOML + "[kernels]\nsm_count = 132\nsaturation = 0\n"
                    "launch_overhead_us = 5\n")
    cluster = load_cluster_file(path).cluster
    assert (cluster.kernels.sm_count, cluster.kernels.saturation) == (132, 0)
    assert cluster.kernels.launch_overhead == pytest.approx(5e-6)
    again = tmp_path / "k.json"
    again.write_text(json.dumps(cluster.to_dict()))
    assert load_cluster_file(again).cluster == cluster
    path.write_text(TOML + "[kernels]\nwarp_size = 32\n")
    with pytest.raises(ValueError,
                       match=r"k.toml: unknown key 'kernels.warp_size'; valid keys in \[kernels\]"):
        load_cluster_file(path)
