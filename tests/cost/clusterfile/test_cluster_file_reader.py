"""The one cluster-file reader: format by suffix or content, BOM, refused files; and the
same content giving the same Cluster (and Calibration) in ``plan`` and ``verify``."""

from __future__ import annotations

import json
import os

import pytest

from ringpipe.cli import main
from ringpipe.cost.clusterfile import reader as cluster_reader
from ringpipe.cost.clusterfile.load import load_cluster_file, read_cluster
from ringpipe.cost.clusterfile.reader import file_format, read_document
from ringpipe.cost.clusterfile.writer import dumps

BOM = b"\xef\xbb\xbf"
PLAN = ["plan", "--layers", "2", "--hidden", "32", "--heads", "4", "--seq", "8",
        "--vocab", "64", "--global-batch", "4", "--headroom", "0", "--json"]


def calibrated() -> dict:
    """A small calibrated cluster file, every table ``ringpipe calibrate`` writes."""
    link = {"bandwidth_gbs": 2.5, "latency_us": 3.0}
    return {"name": "lab", "device": "cpu", "nodes": 2, "gpus_per_node": 2,
            "peak_tflops": 0.05,
            "memory_gib": 4.0, "memory_bandwidth_gbs": 10.0, "achievable_fraction": 1.0,
            "intra_node": dict(link), "inter_node": {**link, "nic_bandwidth_gbs": 2.0},
            "kernels": {"sm_count": 1, "tile_m": 1, "tile_n": 1, "flash_fraction": 1.0,
                        "launch_overhead_us": 2.0, "saturation": 9.0},
            "collectives": [{"collective": "all_reduce", "ranks": 4, "nodes": 2,
                             "source": "all_reduce_perf.log", "sizes": [1024, 4096],
                             "time_us": [30.0, 40.0]}],
            "measured": {
                "host": "lab", "cores": 2, "blas_threads": 1, "backend": "numba",
                "quick": True, "seconds_taken": 6.5, "call_overhead_us": 1.5,
                "memory_bandwidth_gbs": 9.0, "transcendental_ns": 10.0,
                "fresh_memory_ns_per_byte": 0.5, "action_overhead_us": 40.0,
                "tensor_overhead_us": 3.0, "copy_bandwidth_gbs": 12.0,
                "step_call_overhead_us": 1.8, "mpi_step_overhead_us": 480.0,
                "cpu_share": {"inproc": 0.9, "mpi": 0.8, "mpi_processes": 2},
                "op_bandwidth": {"bytes": [1e4, 1e7], "gbs": [40.0, 10.0]},
                "gemm": {"float64": {"peak_gflops": 40.0, "m0": 1.0, "n0": 2.0, "k0": 3.0,
                                     "fixed_us": 1.0, "best_gflops": 30.0,
                                     "shapes": [[4, 4, 4], [8, 8, 8]],
                                     "seconds": [1e-6, 2e-6]}},
                "p2p": {"inproc": {**link, "sizes": [1, 2], "seconds": [1e-6, 2e-6]},
                        "mpi": dict(link)},
                "allreduce": [{"runtime": "mpi", "algorithm": a, "ranks": 2, **link,
                               "fit_alpha_us": 6.0, "fit_beta_ns_per_byte": 0.8,
                               "sizes": [1024], "seconds": [1e-5]} for a in ("ring", "tree")]}}


def write(path, raw: bytes):
    path.write_bytes(raw)
    return path


SPELLINGS = {  # name -> (file name, bytes): one document, every way the reader accepts
    "toml": ("c.toml", lambda d: dumps(d).encode()),
    "json": ("c.json", lambda d: json.dumps(d, indent=1).encode()),
    "toml, other suffix": ("local.txt", lambda d: dumps(d).encode()),
    "json, other suffix": ("cluster.cfg", lambda d: b"\n  " + json.dumps(d).encode()),
    "json, no suffix": ("cluster", lambda d: json.dumps(d).encode()),
    "toml with BOM": ("c.toml", lambda d: BOM + dumps(d).encode()),
    "json with BOM": ("c.json", lambda d: BOM + json.dumps(d).encode()),
    "json with BOM, other suffix": ("c.conf", lambda d: BOM + json.dumps(d).encode()),
    "toml, CRLF": ("c.TOML", lambda d: dumps(d).replace("\n", "\r\n").encode()),
}


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_one_content_one_cluster_in_plan_and_verify(spelling, tmp_path):
    name, encode = SPELLINGS[spelling]
    data = calibrated()
    path = write(tmp_path / name, encode(data))
    assert read_document(path) == data
    cluster = load_cluster_file(path).cluster
    assert cluster == read_cluster(data).cluster and cluster.nodes == 2
    assert cluster.nic_bandwidth == pytest.approx(2e9)
    verify_cluster, cal = load_cluster_file(path).calibrated()
    assert verify_cluster == cluster
    reference = load_cluster_file(write(tmp_path / "ref.toml", dumps(data).encode()))
    reference = reference.calibration
    assert cal == reference
    assert cal.share_mpi == (2, 0.8) and cal.p2p["mpi"].bandwidth == pytest.approx(2.5e9)


def test_plan_prints_the_same_cluster_for_every_spelling(tmp_path, capsys):
    seen = []
    for spelling in ("toml", "json, other suffix", "toml with BOM", "json with BOM"):
        name, encode = SPELLINGS[spelling]
        path = write(tmp_path / name, encode(calibrated()))
        assert main([*PLAN, "--cluster-file", str(path)]) == 0, capsys.readouterr().err
        seen.append(json.loads(capsys.readouterr().out)["cluster"])
    assert all(c == seen[0] for c in seen) and seen[0]["name"] == "lab"


def test_verify_reads_a_json_file_with_a_bom_and_another_suffix(tmp_path, capsys):
    path = write(tmp_path / "local.conf", BOM + json.dumps(calibrated()).encode())
    code = main(["verify", "--backend", "numpy", "--pp", "2", "--microbatches", "2",
                 "--cluster-file", str(path), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    doc = json.loads(out)
    assert doc["cluster_file_host"] == "lab" and doc["predicted_step_time_s"] > 0


def test_format_is_decided_by_suffix_then_first_character():
    assert file_format("a.json", "x = 1") == "json"
    assert file_format("a.TOML", "{") == "toml"
    assert file_format("a.txt", "  \n {\"a\": 1}") == "json"
    assert file_format("a", "# comment\nname = 'x'") == "toml"


def _fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


REFUSED = [  # (make the path, message fragment after "<path>: ")
    (lambda p: p / "missing.toml", "cannot read the cluster file: no such file"),
    (lambda p: p, "cannot read the cluster file: it is a directory"),
    (_fifo, "it is a FIFO (named pipe), not a regular file"),
    (lambda p: write(p / "e.toml", b""), "the cluster file is empty"),
    (lambda p: write(p / "e.json", b" \n\t\n"), "the cluster file is empty"),
    (lambda p: write(p / "e.txt", BOM + b"\n"), "the cluster file is empty"),
    (lambda p: write(p / "n.toml", b"name = 'a'\0\n"), "contains NUL bytes (byte 10)"),
    (lambda p: write(p / "l.toml", "name = 'é'".encode("latin-1")),
     "is not UTF-8 text (byte 8: invalid continuation byte)"),
    (lambda p: write(p / "b.json", bytes(range(256))), "is not UTF-8 text"),
    (lambda p: write(p / "s.toml", b"gpus_per_node = = 8"), "does not parse as TOML: "),
    (lambda p: write(p / "s.json", b"gpus_per_node = 8"),
     "does not parse as JSON: Expecting value"),
    (lambda p: write(p / "s.txt", b"{\"a\": 1,}"),
     "does not parse as JSON (read as JSON from its first character"),
    (lambda p: write(p / "s.cfg", b"a = = 1"),
     "does not parse as TOML (read as TOML from its first character"),
    (lambda p: write(p / "d.json", b'{"nodes": 1, "nodes": 2}'), "duplicate key 'nodes'"),
    (lambda p: write(p / "l.json", b"[1, 2]"), "top level of the cluster file must be a table"),
]


@pytest.mark.parametrize("make, fragment", REFUSED)
def test_unusable_files_are_refused_naming_the_path(make, fragment, tmp_path):
    path = make(tmp_path)
    with pytest.raises(ValueError) as info:
        read_document(path)
    assert str(info.value).startswith(f"{path}: ") and fragment in str(info.value)
    for load in (load_cluster_file, lambda p: load_cluster_file(p).calibrated()):
        with pytest.raises(ValueError, match="^" + str(path).replace("\\", "\\\\")):
            load(path)


def test_a_device_and_an_unreadable_or_huge_file_are_refused(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="it is a character device, not a regular file"):
        read_document(os.devnull)
    path = write(tmp_path / "big.toml", b"name = 'x'\n" * 20)
    monkeypatch.setattr(cluster_reader, "MAX_BYTES", 100)
    with pytest.raises(ValueError, match=r"big.toml: the cluster file is 220 bytes; a "
                                         r"cluster file is at most 100 bytes"):
        read_document(path)
    monkeypatch.undo()

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cluster_reader.os, "open", denied)
    with pytest.raises(ValueError) as info:
        read_document(path)
    monkeypatch.undo()
    assert str(info.value) == f"{path}: cannot read the cluster file: permission denied"
    with pytest.raises(TypeError, match="expected a path, got int"):
        read_document(3)


@pytest.mark.parametrize("make, fragment", [REFUSED[1], REFUSED[2], REFUSED[7], REFUSED[10]])
@pytest.mark.parametrize("command", [[*PLAN], ["verify", "--backend", "numpy"],
                                     ["verify", "--backend", "mpi"]])
def test_commands_refuse_them_on_one_line(command, make, fragment, tmp_path, capsys):
    path = make(tmp_path)
    assert main([*command, "--cluster-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: " in err and fragment in err
    assert "Traceback" not in err
