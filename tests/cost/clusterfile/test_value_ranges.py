"""Every number in a cluster file is range-checked for what the cost model does with it:
a value it would overflow, underflow to 0 or divide by 0 with is refused with exit 2 and
one line naming the file and the key (``[kernels] saturation = 1e300`` made ``plan``
fail with ``internal error: ZeroDivisionError``), and the extremes the range allows
still give an answer."""

from __future__ import annotations

import copy

import pytest

from ringpipe.cli import main
from ringpipe.cost.clusterfile.load import read_cluster
from ringpipe.cost.clusterfile.writer import dumps

BASE = {"name": "x", "gpus_per_node": 8, "peak_tflops": 312.0, "memory_gib": 80.0,
        "memory_bandwidth_gbs": 2039.0, "achievable_fraction": 0.7,
        "intra_node": {"bandwidth_gbs": 300.0, "latency_us": 2.0},
        "inter_node": {"bandwidth_gbs": 25.0, "latency_us": 6.0, "nic_bandwidth_gbs": 25.0},
        "kernels": {"sm_count": 108, "tile_m": 128, "tile_n": 256, "flash_fraction": 0.6,
                    "launch_overhead_us": 3.0, "saturation": 144.0}}
PLAN = ["plan", "--model", "gpt3-175b", "--global-batch", "64", "--nodes", "2", "--top", "1"]

#: Every number of the file, as a path of keys.
NUMBERS = [("peak_tflops",), ("memory_gib",), ("memory_bandwidth_gbs",),
           ("achievable_fraction",), ("intra_node", "bandwidth_gbs"),
           ("intra_node", "latency_us"), ("inter_node", "bandwidth_gbs"),
           ("inter_node", "latency_us"), ("inter_node", "nic_bandwidth_gbs"),
           ("kernels", "flash_fraction"), ("kernels", "launch_overhead_us"),
           ("kernels", "saturation")]
INTEGERS = [("gpus_per_node",), ("kernels", "sm_count"), ("kernels", "tile_m"),
            ("kernels", "tile_n")]


def _with(path: tuple[str, ...], value: object) -> dict:
    data = copy.deepcopy(BASE)
    table = data
    for key in path[:-1]:
        table = table[key]
    table[path[-1]] = value
    return data


def _plan(tmp_path, data: dict, capsys) -> tuple[int, str]:
    path = tmp_path / "cluster.toml"
    path.write_text(dumps(data))
    status = main([*PLAN, "--cluster-file", str(path)])
    return status, capsys.readouterr().err


def test_the_reproducer_exits_2_naming_the_key(tmp_path, capsys):
    status, err = _plan(tmp_path, _with(("kernels", "saturation"), 1e300), capsys)
    assert status == 2 and err.count("\n") == 1 and "internal error" not in err
    assert "kernels.saturation = 1e+300 is out of range" in err and "cluster.toml" in err


@pytest.mark.parametrize("value", [1e300, 1e-300, 1e10, 1e-10])
@pytest.mark.parametrize("path", NUMBERS, ids=".".join)
def test_every_number_out_of_range_is_refused_naming_its_key(path, value):
    with pytest.raises(ValueError) as info:
        read_cluster(_with(path, value), source="c.toml")
    message = str(info.value)
    assert message.startswith(f"c.toml: {'.'.join(path)}"), message
    assert "\n" not in message


@pytest.mark.parametrize("path", INTEGERS, ids=".".join)
def test_every_integer_is_bounded(path):
    with pytest.raises(ValueError, match=f"c.toml: {'.'.join(path)} must be <= "):
        read_cluster(_with(path, 10**30), source="c.toml")


@pytest.mark.parametrize("path,value", [
    (("kernels", "saturation"), 1e9), (("kernels", "saturation"), 0.0),
    (("kernels", "launch_overhead_us"), 1e9), (("inter_node", "bandwidth_gbs"), 1e-9),
    (("inter_node", "nic_bandwidth_gbs"), 1e-9), (("intra_node", "latency_us"), 1e9),
    (("peak_tflops",), 1e-9), (("memory_bandwidth_gbs",), 1e-9),
    (("kernels", "flash_fraction"), 1e-9), (("kernels", "tile_m"), 10**9),
])
def test_the_extremes_of_the_range_still_give_an_answer(tmp_path, capsys, path, value):
    status, err = _plan(tmp_path, _with(path, value), capsys)
    assert status in (0, 1), err  # 1: nothing fits, said so
    assert "internal error" not in err and "Traceback" not in err


#: A measured ``[[collectives]]`` row (main's cluster measurement): sizes in bytes may
#: reach far past 1e9 (nccl-tests logs go to 8 GiB), the rest is in range like any key.
COLLECTIVE = {"collective": "all_reduce", "ranks": 8, "nodes": 1,
              "sizes": [1024.0, 2.0**33], "time_us": [10.0, 80000.0]}


def _with_collective(key: str, value: object) -> dict:
    return {**copy.deepcopy(BASE), "collectives": [{**COLLECTIVE, key: value}]}


@pytest.mark.parametrize("key,value,names", [
    ("sizes", [1024.0, 1e300], "collectives[0].sizes[1] = 1e+300 is out of range"),
    ("sizes", [1e-300, 2048.0], "collectives[0].sizes[0] = 1e-300 is out of range"),
    ("time_us", [1e300, 2e300], "collectives[0].time_us[0] = 1e+300 is out of range"),
    ("time_us", [1e-30, 1.0], "collectives[0].time_us[0] = 1e-30 is out of range"),
    ("ranks", 10**30, "collectives[0].ranks must be <= "),
])
def test_measured_collective_tables_are_range_checked(key, value, names):
    with pytest.raises(ValueError) as info:
        read_cluster(_with_collective(key, value), source="c.toml")
    assert str(info.value).startswith("c.toml: ") and names in str(info.value), info.value


def test_byte_sizes_past_1e9_are_taken():
    cluster = read_cluster(_with_collective("sizes", [1024.0, 2.0**33]), source="c.toml")
    assert cluster.cluster.collectives[0].sizes[-1] == 2.0**33


def test_the_device_field_must_be_printable(tmp_path, capsys):
    status, err = _plan(tmp_path, {**BASE, "device": "g\x1bpu"}, capsys)
    assert status == 2 and err.count("\n") == 1 and "device" in err


@pytest.mark.parametrize("override,key", [
    ("kernels.saturation=1e300", "kernels.saturation = 1e+300 is out of range"),
    ("inter_node.bandwidth_gbs=1e-30", "inter_node.bandwidth_gbs = 1e-30 is out of range"),
])
def test_set_overrides_are_range_checked_alike(capsys, override, key):
    status = main([*PLAN, "--cluster", "dgx-a100", "--set", override])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and key in err, err
