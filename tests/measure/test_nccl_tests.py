"""``ringpipe calibrate --from-nccl-tests``: the strict reader on published logs and on
every program's layout, the α-β fit against each log's own bus bandwidth, and a cluster
file that the planner reads and that changes its answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ringpipe.cli import main
from ringpipe.cost.clusterfile.load import load_cluster_file
from ringpipe.cost.hardware.cluster import cluster_preset
from ringpipe.cost.hardware.collectives import CollectiveModel
from ringpipe.measure.nccltests import cluster_from_runs, parse_log, read_logs
from ringpipe.measure.nccltests.fit import fit_run
from ringpipe.measure.nccltests.parse import busbw_factor

DATA = Path(__file__).parent / "data" / "nccl_tests"
#: published logs (data/nccl_tests/SOURCE.md): file -> (ranks, nodes, --nodes-in-log)
PUBLISHED = {"a3mega_h100_2x8_all_reduce_perf.log": (16, 2, None),
             "oke_a100_2x8_all_reduce_perf.log": (16, 2, None),
             "dgx_a100_4gpu_all_reduce_perf.log": (4, 1, 1),
             "a40_4gpu_sys_p2p_disabled_all_reduce_perf.log": (4, 1, 1)}
PROGRAMS = {"all_reduce": "all_reduce_perf", "all_gather": "all_gather_perf",
            "reduce_scatter": "reduce_scatter_perf", "all_to_all": "alltoall_perf",
            "send_recv": "sendrecv_perf"}


def nccl_log(program: str, ranks: int, nodes: int, alpha_us: float, bus_gbs: float,
             sizes=tuple(8 << (2 * i) for i in range(14)), *, old: bool = False,
             tag: str = "", end: bool = True) -> str:
    """A log in nccl-tests' print format (src/common.cu) of a run whose times are
    alpha + f·S/busbw: not a measurement, a layout (``old``: the pre-2.11 columns, no
    device ``Group``, ``error`` for ``#wrong``; ``tag``: Open MPI's --tag-output)."""
    collective = {v: k for k, v in PROGRAMS.items()}[program]
    f = busbw_factor(collective, ranks)
    redop = "sum" if collective in ("all_reduce", "reduce_scatter") else "none"
    lines = [f"# Collective test starting: {program}",
             f"# nThread 1 nGpus 1 minBytes {sizes[0]} maxBytes {sizes[-1]} step: 2(factor) "
             "warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0", "#",
             "# Using devices"]
    per = ranks // nodes
    for r in range(ranks):
        group = "" if old else "Group  0 "
        lines.append(f"#  Rank {r:2d} {group}Pid {1000 + r:6d} on node-{r // per} device "
                     f"{r % per:2d} [0x{r:02x}] NVIDIA H100 80GB HBM3")
    wrong = "error" if old else "#wrong"
    root = "" if old else "    root"
    lines += ["#", f"#       size         count      type   redop{root}     time   algbw   "
              f"busbw {wrong}     time   algbw   busbw {wrong}",
              "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)"]
    for s in sizes:
        t = alpha_us + f * s / (bus_gbs * 1e3)
        alg = s / t / 1e3
        cols = f"{t:8.1f} {alg:7.2f} {alg * f:7.2f} {'0e+00' if old else '0':>6}"
        lines.append(f"{s:12d} {s // 4:12d}     float {redop:>7}{'' if old else '      -1'} "
                     f"{cols} {cols}")
    lines += ["# Out of bounds values : 0 OK"] + (["# Avg bus bandwidth    : 1.0", "#"]
                                                  if end else [])
    return "\n".join(tag + ln for ln in lines) + "\n"


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_logs_fit_their_own_bus_bandwidth_within_5_percent(name):
    ranks, nodes, nodes_in_log = PUBLISHED[name]
    (run,) = read_logs([DATA / name], nodes_in_log)
    assert (run.test, run.ranks, run.nodes) == ("all_reduce_perf", ranks, nodes)
    fit = fit_run(run)
    logged = run.largest.busbw_gbs
    assert fit.fitted_busbw_gbs == pytest.approx(logged, rel=0.05)
    assert fit.tier == ("inter_node" if nodes > 1 else "intra_node")
    assert run.largest.in_place_busbw_gbs is not None


def test_every_program_and_layout_is_read_and_the_fit_recovers_the_link():
    for program in PROGRAMS.values():
        for ranks, nodes in ((8, 1), (16, 2)):
            for old, tag in ((False, ""), (True, "[1,0]<stdout>:")):
                text = nccl_log(program, ranks, nodes, 20.0, 100.0, old=old, tag=tag)
                text = "[1,1]<stderr>:some warning\n" + text if tag else text
                (run,) = parse_log(text, "x.log")
                assert (run.test, run.ranks, run.nodes) == (program, ranks, nodes)
                assert run.gpu == "NVIDIA H100 80GB HBM3" and len(run.rows) == 14
                fit = fit_run(run)
                assert fit.fitted_busbw_gbs == pytest.approx(run.largest.busbw_gbs, rel=0.01)
                assert fit.alpha == pytest.approx(20e-6 + 8 * busbw_factor(
                    run.collective, ranks) / 100e9, rel=0.05)


def test_one_node_ring_link_is_the_bus_bandwidth_and_latency_per_step():
    (run,) = parse_log(nccl_log("all_reduce_perf", 8, 1, 14.0, 200.0), "x.log")
    fit = fit_run(run)
    assert fit.bandwidth == pytest.approx(200e9, rel=0.01)
    assert fit.latency == pytest.approx(fit.alpha / 14)
    (run,) = parse_log(nccl_log("all_reduce_perf", 16, 2, 14.0, 200.0), "x.log")
    assert fit_run(run).bandwidth == pytest.approx(200e9 / 8, rel=0.01)  # per GPU: k NICs


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("# Avg bus bandwidth    : 1.0\n", ""), "a truncated log"),
    (lambda t: t.replace("sum      -1", "sum", 1), "fields but the header names"),
    (lambda t: t.replace("     float", " float  oops", 1), "fields but the header"),
    (lambda t: t.replace("Collective test starting: all_reduce_perf",
                         "Collective test starting: broadcast_perf"), "broadcast_perf is one"),
    (lambda t: t.replace("Collective test starting: all_reduce_perf", "x"),
     "cannot tell which nccl-tests program"),
    (lambda t: t.replace("# Out of bounds", "NCCL WARN oops\n# Out of bounds"),
     "expected a table row"),
    (lambda t: "hello\nworld\n", ":1: not an nccl-tests log"),
], ids=["truncated", "short-row", "long-row", "other-test", "unknown-test", "stray-line",
        "not-a-log"])
def test_strict_parsing_names_the_line(edit, message):
    text = edit(nccl_log("all_reduce_perf", 8, 1, 10.0, 100.0))
    with pytest.raises(ValueError, match=message) as info:
        parse_log(text, "run.log")
    assert str(info.value).startswith("run.log:")


def test_ranks_and_nodes_need_device_lines_or_the_flag():
    table = "\n".join(ln for ln in nccl_log("all_reduce_perf", 4, 1, 10.0, 100.0).splitlines()
                      if "Rank" not in ln)
    with pytest.raises(ValueError, match="give --nodes-in-log"):
        parse_log(table, "t.log")
    (run,) = parse_log(table, "t.log", nodes_in_log=1)
    assert run.ranks == 4
    with pytest.raises(ValueError, match="does not divide"):
        parse_log(table, "t.log", nodes_in_log=3)


def test_cli_writes_a_file_the_planner_reads_and_json_reports_each_log(tmp_path, capsys):
    out = tmp_path / "c.toml"
    logs = [str(DATA / "oke_a100_2x8_all_reduce_perf.log"),
            str(DATA / "a3mega_h100_2x8_all_reduce_perf.log")]
    assert main(["calibrate", "--from-nccl-tests", *logs, "-o", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(d["test"], d["ranks"], d["nodes"]) for d in doc["logs"]] == \
        [("all_reduce_perf", 16, 2)] * 2
    for d in doc["logs"]:
        assert d["fitted_busbw_gbs"] == pytest.approx(d["busbw_gbs"], rel=0.05)
    cluster = load_cluster_file(out).cluster
    assert cluster.gpus_per_node == 8 and cluster.nodes == 2 and len(cluster.collectives) == 1
    assert cluster.inter.bandwidth == pytest.approx(doc["inter_node"]["bandwidth_gbs"] * 1e9)


def test_bad_logs_and_flags_exit_2_on_one_line(tmp_path, capsys):
    bad = tmp_path / "all_reduce_perf.log"
    bad.write_text(nccl_log("all_reduce_perf", 8, 1, 10.0, 100.0, end=False))
    out = str(tmp_path / "c.toml")
    for argv in (["--from-nccl-tests", str(bad)],
                 ["--from-nccl-tests", str(tmp_path / "missing.log")],
                 ["--from-nccl-tests", str(DATA / "oke_a100_2x8_all_reduce_perf.log"),
                  "--np", "2"],
                 ["--nodes-in-log", "2"]):
        assert main(["calibrate", *argv, "-o", out]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ringpipe calibrate:"), err
    assert not (tmp_path / "c.toml").exists()


def test_measured_links_change_the_planners_answer(tmp_path):
    from ringpipe.cost.training.recipe import Recipe
    from ringpipe.cost.training.search import search
    from ringpipe.cost.training.spec import TrainingSpec
    from ringpipe.model.presets import model_preset

    (run,) = read_logs([DATA / "a40_4gpu_sys_p2p_disabled_all_reduce_perf.log"], 1)
    built = cluster_from_runs([run], base="dgx-a100")
    slow = load_from(built.document, tmp_path).with_nodes(16)
    preset = cluster_preset("dgx-a100", 16)
    preset = type(preset)(**{**preset.__dict__, "gpus_per_node": 4})
    spec = TrainingSpec(512, None, "bf16", None, Recipe())
    best = [search(model_preset("gpt3-175b"), spec, c).best.config for c in (preset, slow)]
    assert best[0].tp > 1 and best[1].tp == 1  # GPUs that talk through the CPU: no TP


def load_from(document: dict, tmp_path: Path):
    from ringpipe.cost.clusterfile.writer import dumps

    path = tmp_path / "built.toml"
    path.write_text(dumps(document))
    return load_cluster_file(path).cluster


def test_the_planner_prefers_the_measured_table_for_that_group(tmp_path):
    (run,) = read_logs([DATA / "oke_a100_2x8_all_reduce_perf.log"])
    cluster = load_from(cluster_from_runs([run]).document, tmp_path)
    model = CollectiveModel(cluster)
    for row in run.rows[::5]:
        cost = model.best("all_reduce", row.size, 16)
        assert cost.algorithm == "measured"
        assert cost.time == pytest.approx(row.time_s, rel=1e-9)
    assert model.best("all_reduce", 1 << 30, 8).algorithm != "measured"  # one node: α-β
    assert model.best("all_reduce", 1 << 30, 16, concurrent_per_node=8).algorithm == \
        "measured"
    between = model.best("all_reduce", 3 << 20, 16).time
    assert run.rows[18].time_s < between < run.rows[19].time_s
