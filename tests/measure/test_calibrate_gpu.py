"""``ringpipe calibrate --backend cupy``: the probes run on the emulated device, the file
they make is a valid GPU cluster file, NCCL probe times become links and tables as logs
do; and nothing claiming GPU numbers is written under the emulated device or Numba's CUDA
simulator (exit 2, one line)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from emulated_device import EMULATED
from emulated_gpu import emulated_gpu

import ringpipe.measure.calibrate.gpu as gpu
from ringpipe.cli import main
from ringpipe.cost.clusterfile.load import read_cluster
from ringpipe.cost.hardware.cluster import cluster_preset
from ringpipe.measure.calibrate.nccl_probe import runs_from_probe
from ringpipe.measure.calibrate.summary import summary
from ringpipe.measure.nccltests import cluster_from_runs
from ringpipe.measure.timer import Budget


def test_emulated_device_is_refused_before_anything_is_written(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(gpu, "gpu_arrays", lambda where: emulated_gpu())
    out = tmp_path / "gpu.toml"
    assert main(["calibrate", "--backend", "cupy", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not CuPy on a GPU (an emulated device)" in err[0]
    assert "refusing to write a cluster file that claims GPU numbers" in err[0]
    assert not out.exists()


@pytest.mark.slow
def test_cuda_simulator_is_refused_in_one_line(tmp_path):
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    out = tmp_path / "gpu.toml"
    done = subprocess.run([sys.executable, "-m", "ringpipe", "calibrate", "--backend", "cupy",
                           "--quick", "-o", str(out)], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Numba's CUDA simulator" in lines[0], lines
    assert not out.exists()


def test_probes_on_the_emulated_device_make_a_valid_gpu_file(monkeypatch):
    monkeypatch.setattr(gpu, "QUICK_SIZES", (8, 16))
    seen = []
    measured = gpu.measure_device(EMULATED, True, Budget(0.002, 3), seen.append,
                                  dtypes=("float16", "float32"))
    assert seen[0].startswith("[1/3]") and len(seen) == 3
    assert measured["call_overhead_us"] > 0 and measured["memory_bandwidth_gbs"] > 0
    curve = measured["gemm"]["float16"]
    assert len(curve["shapes"]) == 8 and curve["peak_gflops"] > 0
    facts = {"name": "NVIDIA H100 80GB HBM3", "sm_count": 132, "memory_gib": 79.1}
    measured["seconds_taken"] = 1.0
    doc = gpu.gpu_document(facts, measured, cluster_preset("dgx-h100").to_dict())
    checked = read_cluster(doc)
    assert checked.cluster.device == "gpu" and checked.cluster.kernels.sm_count == 132
    assert checked.cluster.peak_flops == pytest.approx(curve["peak_gflops"] * 1e9)
    assert checked.calibration.curve("float16", checked.cluster).peak_flops > 0
    assert "HBM bandwidth" in summary(doc, ["a note"])


def test_bfloat16_needs_cupy():
    with pytest.raises(ValueError, match="bfloat16 GEMMs need cuBLAS"):
        gpu.measure_gemm_gpu(EMULATED, "bfloat16", (8,), Budget(0.001, 1))


def test_nccl_probe_times_become_links_and_tables_as_logs_do():
    # times of a 16-GPU, 2-node job: alpha + size * f / busbw, busbw 100 GB/s
    doc = {"ranks": 16, "nodes": 2, "gpu": "NVIDIA H100 80GB HBM3", "runs": {}}
    for name, f in (("all_reduce", 2 * 15 / 16), ("all_gather", 15 / 16), ("send_recv", 1)):
        doc["runs"][name] = [[s, 30e-6 + s * f / 100e9] for s in (8 << (3 * i) for i in range(10))]
    runs = runs_from_probe(doc, "nccl probe")
    assert [r.test for r in runs] == ["all_reduce_perf", "all_gather_perf", "sendrecv_perf"]
    built = cluster_from_runs(runs)
    assert built.document["inter_node"]["bandwidth_gbs"] == pytest.approx(100 / 8, rel=0.01)
    assert len(built.document["collectives"]) == 3
    assert read_cluster(built.document).cluster.gpus_per_node == 8


def test_hostfile_needs_cupy_and_np(tmp_path, capsys):
    assert main(["calibrate", "--hostfile", "h", "-o", str(tmp_path / "x.toml")]) == 2
    assert "--hostfile goes with --backend cupy --np N" in capsys.readouterr().err
