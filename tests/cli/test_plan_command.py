"""``ringpipe plan``: --plot paths, the shipped example cluster file, mesh pins."""

from pathlib import Path

import pytest

from ringpipe.cli import main
from ringpipe.cli.plan.command import check_plot_path
from ringpipe.cost.clusterfile.load import load_cluster_file
from ringpipe.cost.hardware.cluster import cluster_preset

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.toml"
PLAN = ["plan", "--model", "gpt3-175b", "--cluster", "dgx-a100", "--nodes", "8",
        "--global-batch", "1536", "--top", "2"]


def test_plan_pinned_mesh_must_match_the_gpu_count(capsys):
    argv = ["plan", "--model", "gpt3-175b", "--cluster", "dgx-a100", "--nodes", "8",
            "--global-batch", "1536", "--tp", "8", "--pp", "8", "--dp", "2"]
    assert main(argv) == 2
    assert "8 × 8 × 2 = 128 GPUs, but the cluster has 64" in capsys.readouterr().err


def test_plot_into_a_missing_directory_is_refused_before_planning(tmp_path, capsys):
    target = tmp_path / "nope" / "p.png"
    assert main([*PLAN, "--plot", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no directory {target.parent}" in err


def test_plot_into_a_directory_is_refused(tmp_path, capsys):
    assert main([*PLAN, "--plot", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert not Path(str(tmp_path) + ".png").exists()  # no silent <dir>.png
    with pytest.raises(ValueError, match="is a directory"):
        check_plot_path(str(tmp_path) + "/")


def test_plot_writes_exactly_the_path_given(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    target = tmp_path / "plan"  # no suffix: matplotlib alone would write plan.png
    assert main([*PLAN, "--plot", str(target)]) == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "plan.png").exists()


def test_shipped_example_cluster_file_is_the_dgx_a100_preset():
    cluster = load_cluster_file(EXAMPLE).cluster
    preset = cluster_preset("dgx-a100", 8)
    assert cluster.nodes == 8 and cluster.gpus_per_node == 8
    for field in ("peak_flops", "memory_bytes", "memory_bandwidth", "intra", "inter"):
        assert getattr(cluster, field) == getattr(preset, field)


def test_the_documented_cluster_file_example_answers(capsys):
    """docs/calibration.md's example: GPT-3 175B fits on the file's 8 nodes (on 4 it
    fitted nowhere)."""
    assert main(["plan", "--model", "gpt3-175b", "--cluster-file", str(EXAMPLE),
                 "--global-batch", "1536", "--top", "1"]) == 0
    assert "on 8 × my-a100-cluster (64 GPUs)" in capsys.readouterr().out


def test_binary_cluster_file_is_a_one_line_error_naming_it(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_bytes(bytes(range(256)))
    assert main(["plan", "--model", "gpt3-175b", "--cluster-file", str(path),
                 "--global-batch", "8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not UTF-8 text" in err and str(path) in err
