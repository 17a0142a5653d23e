"""Cluster-file keys: every value checked in the file's units, messages that name the
file and the key as spelled there, unknown keys refused everywhere, ``nodes`` under the
``max_nodes`` limit, and the calibrate header citing a docs page and sections that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_cluster_file_reader import PLAN, calibrated

from ringpipe.cli import main
from ringpipe.cli.calibrate.command import HEADER
from ringpipe.cost.clusterfile.load import TOP_KEYS, load_cluster_file, read_cluster
from ringpipe.cost.clusterfile.measured import MEASURED_KEYS
from ringpipe.cost.clusterfile.writer import dumps

ROOT = Path(__file__).resolve().parents[3]
NAN, INF = float("nan"), float("inf")


def _set(dotted: str, value: object):
    """An edit that sets ``a.b[0].c`` (``value`` DELETE removes the key)."""
    def edit(data: dict) -> None:
        parts = [int(p[1:-1]) if p.startswith("[") else p
                 for p in re.findall(r"[^.\[\]]+|\[\d+\]", dotted)]
        *parents, last = parts
        for part in parents:
            data = data[part]
        if value is DELETE:
            del data[last]
        else:
            data[last] = value
    return edit


DELETE = object()
M = "measured"
CASES = [  # (key as spelled in the file, value, message after "<file>: ")
    # what the adversarial tester saw
    (f"{M}.p2p.mpi.bandwidth_gbs", 0, f"{M}.p2p.mpi.bandwidth_gbs must be > 0, got 0"),
    (f"{M}.gemm.float64.peak_gflops", 0, f"{M}.gemm.float64.peak_gflops must be > 0, got 0"),
    ("kernels.launch_overhead_us", -1, "kernels.launch_overhead_us must be >= 0, got -1"),
    ("peak_tflops", 1e300, "peak_tflops = 1e+300 is out of range"),
    (f"{M}.op_bandwidth.gbs", ["a", 1.0], f"{M}.op_bandwidth.gbs[0] must be a number, got str"),
    (f"{M}.op_bandwidth.bytes", 5, f"{M}.op_bandwidth.bytes must be an array, got int"),
    (f"{M}.cores", DELETE, f"missing {M}.cores"),
    (f"{M}.op_bandwidth.gbs", [NAN, 1.0], f"{M}.op_bandwidth.gbs[0] must be finite, got nan"),
    (f"{M}.corse", 64, f"unknown key '{M}.corse'; valid keys in [{M}]: "
                       "action_overhead_us, allreduce, backend, blas_threads"),
    (f"{M}.p2p.nccl", {"bandwidth_gbs": 1.0, "latency_us": 1.0},
     f"unknown key '{M}.p2p.nccl'; valid keys in [{M}.p2p]: inproc, mpi"),
    (f"{M}.allreduce[1].algorithm", "rnig",
     f"{M}.allreduce[1].algorithm must be one of ring, tree, got 'rnig'"),
    # the headline keys
    ("name", 5, "name must be a string, got int"),
    ("name", "", "name must not be empty"),
    ("nodes", 1.5, "nodes must be an int, got float"),
    ("gpus_per_node", DELETE, "missing gpus_per_node"),
    ("gpus_per_node", True, "gpus_per_node must be an int, got bool"),
    ("memory_gib", "80", "memory_gib must be a number, got str"),
    ("memory_gib", INF, "memory_gib must be finite, got inf"),
    ("memory_bandwidth_gbs", NAN, "memory_bandwidth_gbs must be finite, got nan"),
    ("achievable_fraction", 1.5, "achievable_fraction must be <= 1, got 1.5"),
    ("peak_tlops", 3, "unknown key 'peak_tlops'; valid keys in the top level: "
                      "achievable_fraction, collectives, device, gpus_per_node"),
    ("intra_node", 3, "intra_node must be a table, got int"),
    ("intra_node.latency_us", DELETE, "missing intra_node.latency_us"),
    ("intra_node.latency_us", None, "intra_node.latency_us must be a number"),
    ("intra_node.nic_bandwidth_gbs", 1.0, "unknown key 'intra_node.nic_bandwidth_gbs'; valid "
                                          "keys in [intra_node]: bandwidth_gbs, latency_us"),
    ("inter_node.bandwidth_gbs", 40.0,
     "inter_node.bandwidth_gbs (40) exceeds intra_node.bandwidth_gbs (2.5)"),
    ("inter_node.nic_bandwidth_gbs", 0, "inter_node.nic_bandwidth_gbs must be > 0, got 0"),
    ("kernels.sm_count", 0, "kernels.sm_count must be >= 1, got 0"),
    ("kernels.flash_fraction", 2, "kernels.flash_fraction must be <= 1, got 2"),
    ("kernels.warp_size", 32, "unknown key 'kernels.warp_size'; valid keys in [kernels]"),
    # the rest of [measured]
    (M, 3, f"{M} must be a table, got int"),
    (f"{M}.cores", True, f"{M}.cores must be an int, got bool"),
    (f"{M}.cores", 0, f"{M}.cores must be >= 1, got 0"),
    (f"{M}.host", 1, f"{M}.host must be a string, got int"),
    (f"{M}.quick", "yes", f"{M}.quick must be true or false, got str"),
    (f"{M}.seconds_taken", -1, f"{M}.seconds_taken must be >= 0, got -1"),
    (f"{M}.call_overhead_us", INF, f"{M}.call_overhead_us must be finite, got inf"),
    (f"{M}.memory_bandwidth_gbs", 0, f"{M}.memory_bandwidth_gbs must be > 0, got 0"),
    (f"{M}.cpu_share.inproc", 1.5, f"{M}.cpu_share.inproc must be <= 1, got 1.5"),
    (f"{M}.cpu_share.mpi_processes", DELETE,
     f"{M}.cpu_share.mpi needs {M}.cpu_share.mpi_processes"),
    (f"{M}.cpu_share.mpi_processes", 1, f"{M}.cpu_share.mpi_processes must be >= 2, got 1"),
    (f"{M}.cpu_share.shared", 1, f"unknown key '{M}.cpu_share.shared'"),
    (f"{M}.op_bandwidth.gbs", [1.0], f"{M}.op_bandwidth.bytes and {M}.op_bandwidth.gbs "
                                     "must be non-empty arrays of equal length, got 2 and 1"),
    (f"{M}.op_bandwidth.bytes", [0, 1], f"{M}.op_bandwidth.bytes[0] must be > 0, got 0"),
    (f"{M}.op_bandwidth.peak", 1, f"unknown key '{M}.op_bandwidth.peak'"),
    (f"{M}.gemm.int8", {"peak_gflops": 1.0},
     f"unknown key '{M}.gemm.int8'; valid keys in [{M}.gemm]: bfloat16, float16, float32, "
     "float64"),
    (f"{M}.gemm.float64.peak_gflops", DELETE, f"missing {M}.gemm.float64.peak_gflops"),
    (f"{M}.gemm.float64.m0", -1, f"{M}.gemm.float64.m0 must be >= 0, got -1"),
    (f"{M}.gemm.float64.peak_gflop", 1, f"unknown key '{M}.gemm.float64.peak_gflop'"),
    (f"{M}.gemm.float64.shapes", [[4, 4]], f"{M}.gemm.float64.shapes[0] must be an array"),
    (f"{M}.gemm.float64.seconds", [1e-6],
     f"{M}.gemm.float64.seconds has 1 entries but {M}.gemm.float64.shapes has 2"),
    (f"{M}.p2p.mpi", [], f"{M}.p2p.mpi must be a table, got list"),
    (f"{M}.p2p.inproc.sizes", [1, "2"], f"{M}.p2p.inproc.sizes[1] must be a number, got str"),
    (f"{M}.p2p.mpi.alpha_us", 1, f"unknown key '{M}.p2p.mpi.alpha_us'"),
    (f"{M}.allreduce", 3, f"{M}.allreduce must be an array of tables, got int"),
    (f"{M}.allreduce[0]", 3, f"{M}.allreduce[0] must be a table, got int"),
    (f"{M}.allreduce[0].ranks", 1, f"{M}.allreduce[0].ranks must be >= 2, got 1"),
    (f"{M}.allreduce[0].runtime", "nccl",
     f"{M}.allreduce[0].runtime must be one of inproc, mpi, got 'nccl'"),
    (f"{M}.allreduce[0].runtime", DELETE, f"missing {M}.allreduce[0].runtime"),
    (f"{M}.allreduce[1].algorithm", "ring", f"{M}.allreduce[1] repeats runtime 'mpi', "
                                            f"algorithm 'ring', ranks 2 of {M}.allreduce[0]"),
    (f"{M}.allreduce[0].fit_beta_ns_per_byte", NAN,
     f"{M}.allreduce[0].fit_beta_ns_per_byte must be finite, got nan"),
    (f"{M}.allreduce[0].bandwith_gbs", 1, f"unknown key '{M}.allreduce[0].bandwith_gbs'"),
]


@pytest.mark.parametrize("key, value, message", CASES,
                         ids=[f"{k}={v!r}"[:50] for k, v, _ in CASES])
def test_a_bad_value_names_the_file_and_the_key(key, value, message, tmp_path):
    data = calibrated()
    _set(key, value)(data)
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(data))  # JSON: NaN and Infinity survive the round trip
    expected = f"{path}: {message}"
    for load in (load_cluster_file, lambda p: load_cluster_file(p).calibrated()):
        with pytest.raises((TypeError, ValueError)) as info:
            load(path)
        assert str(info.value).startswith(expected), str(info.value)
    with pytest.raises((TypeError, ValueError), match="^cluster file: " + re.escape(message)):
        read_cluster(data)


def test_the_base_document_is_valid_and_every_key_is_known():
    data = calibrated()
    assert set(data) == set(TOP_KEYS) and set(data["measured"]) == set(MEASURED_KEYS)
    read_cluster(data)


@pytest.mark.parametrize("key, value, message", [CASES[7], CASES[8], CASES[10]])
@pytest.mark.parametrize("command", [[*PLAN], ["verify", "--backend", "numpy", "--json"],
                                     ["verify", "--backend", "mpi"]])
def test_commands_refuse_a_bad_value_on_one_line(command, key, value, message, tmp_path,
                                                  capsys):
    data = calibrated()
    _set(key, value)(data)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    assert main([*command, "--cluster-file", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert f"{path}: {message}" in captured.err


def test_verify_needs_a_calibrated_file(tmp_path, capsys):
    data = calibrated()
    del data["measured"]
    path = tmp_path / "plain.toml"
    path.write_text(dumps(data))
    assert load_cluster_file(path).cluster == read_cluster(calibrated()).cluster
    assert main(["verify", "--backend", "numpy", "--cluster-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: the cluster file has no [measured] table" in err
    assert "`ringpipe calibrate --output FILE`" in err and err.count("\n") == 1


def _plain(tmp_path, nodes: int) -> str:
    data = calibrated()
    data["nodes"] = nodes
    path = tmp_path / "n.toml"
    path.write_text(dumps(data))
    return str(path)


def test_the_files_nodes_obey_max_nodes(tmp_path, capsys, monkeypatch):
    path = _plain(tmp_path, 134217728)
    assert main([*PLAN, "--cluster-file", path]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: ringpipe plan: {path}: nodes = 134217728 exceeds the limit "
                   "max_nodes=1000000; if you mean it, raise the limit: "
                   "RINGPIPE_LIMITS=max_nodes=134217728\n")
    assert main([*PLAN, "--cluster-file", path, "--nodes", "2"]) == 0  # overridden
    assert json.loads(capsys.readouterr().out)["cluster"]["nodes"] == 2
    path = _plain(tmp_path, 2)
    monkeypatch.setenv("RINGPIPE_LIMITS", "max_nodes=1")
    assert main([*PLAN, "--cluster-file", path]) == 2
    assert "n.toml: nodes = 2 exceeds the limit max_nodes=1" in capsys.readouterr().err
    monkeypatch.setenv("RINGPIPE_LIMITS", "max_nodes=2")
    assert main([*PLAN, "--cluster-file", path]) == 0
    assert json.loads(capsys.readouterr().out)["cluster"]["nodes"] == 2


def test_the_calibrate_header_cites_a_docs_page_and_sections_that_exist():
    assert "README" not in HEADER
    pages = re.findall(r"docs/[\w/.-]+\.md", HEADER)
    assert pages == ["docs/calibration.md"], pages
    page = ROOT / pages[0]
    assert page.is_file(), page
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)  # not code
    headings = {line.lstrip("#").strip() for line in text.splitlines()
                if line.startswith("#")}
    cited = re.findall(r'"([^"]+)"', HEADER)
    assert len(cited) == 3 and all(title in headings for title in cited), cited
