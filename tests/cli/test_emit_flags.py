"""``ringpipe plan --emit TOOL``: every flag printed is one the tool documents
(``ringpipe/cli/emit/data/<tool>.toml``, with its source), and a plan a tool cannot run
is said to be so."""

import json

import pytest
import tomllib

from ringpipe.cli import main
from ringpipe.cli.emit import EMIT_TOOLS, emit_serving, emit_training
from ringpipe.cli.emit.flags import DATA, Emission, check, tool_data
from ringpipe.cli.emit.serving import SERVING_EMITTERS
from ringpipe.cli.emit.training import TRAINING_EMITTERS
from ringpipe.cost.hardware.cluster import cluster_preset
from ringpipe.cost.inference.search import search as inference_search
from ringpipe.cost.inference.workload import Workload
from ringpipe.cost.training.search import search
from ringpipe.cost.training.spec import TrainingSpec
from ringpipe.model.presets import model_preset

SEED = ["plan", "--model", "llama3-70b", "--cluster", "dgx-h100", "--nodes", "4",
        "--global-batch", "512"]


def test_every_tool_has_a_data_file_with_its_source():
    assert set(EMIT_TOOLS) == {"megatron", "nemo", "torchtitan", "deepspeed", "vllm",
                               "sglang", "trtllm"}
    for tool in EMIT_TOOLS:
        raw = tomllib.loads((DATA / f"{tool}.toml").read_text())
        assert raw["source"].startswith("https://") and raw["version"]
        assert raw["style"] in ("flags", "overrides", "toml", "json") and raw["flags"]


def _emitted_names(text: str, tool: str) -> list[str]:
    style = tool_data(tool).style
    body = [line for line in text.splitlines() if not line.startswith("#")]
    if style == "flags":
        launcher = tool_data(tool).launcher.split()
        return [w for line in body for w in line.split()
                if w.startswith("--") and w not in launcher]
    if style == "overrides":
        return [w.split("=")[0] for line in body for w in line.split() if "=" in w]
    if style == "toml":
        names, section = [], None
        for line in body:
            if line.startswith("["):
                section = line.strip("[]")
            elif " = " in line:
                names.append(f"{section}.{line.split(' = ')[0]}")
        return names
    doc = json.loads("\n".join(body))
    return [f"{k}.{kk}" if isinstance(v, dict) else k
            for k, v in doc.items() for kk in (v if isinstance(v, dict) else [None])]


@pytest.fixture(scope="module")
def seed_report():
    return search(model_preset("llama3-70b"), TrainingSpec(512), cluster_preset("dgx-h100", 4))


@pytest.mark.parametrize("tool", list(TRAINING_EMITTERS))
def test_training_emissions_use_documented_names_only(tool, seed_report):
    text = emit_training(seed_report, tool)
    names = _emitted_names(text, tool)
    assert names and set(names) <= set(tool_data(tool).flags), names


def test_seed_example_emits_megatron_flags(capsys):
    assert main([*SEED, "--emit", "megatron"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines() if "https://" not in line) <= 100
    out = out.replace("\n#   ", " ")  # comments wrap at 100 columns
    assert out.startswith("# Verdict: TP=2 inside each node, CP=2 inside each node, PP=8 "
                          "across nodes (1F1B, balanced split 8/10/10/11/11/11/10/9 layers)")
    # the balanced split is Megatron-core's layout, quoted for the shell; CP its own flag
    assert "cannot run" not in out
    assert ("--pipeline-model-parallel-layout 'E,t*8|t*10|t*10|(t*11|)*3t*10|t*9,L' \\"
            in out)
    assert "--num-layers-per-virtual-pipeline-stage" not in out
    for flag, value in (("--tensor-model-parallel-size", "2"),
                        ("--pipeline-model-parallel-size", "8"),
                        ("--context-parallel-size", "2"),
                        ("--recompute-granularity", "selective"), ("--micro-batch-size", "1"),
                        ("--global-batch-size", "512"), ("--seq-length", "8192"),
                        ("--num-layers", "80")):
        assert f"{flag} {value} \\" in out
    for switch in ("--sequence-parallel", "--use-distributed-optimizer",
                   "--overlap-grad-reduce"):
        assert f"{switch} \\" in out or out.rstrip().endswith(switch)
    flags = _emitted_names(out, "megatron")
    assert set(flags) <= set(tool_data("megatron").flags)


def test_even_split_emits_virtual_stages(capsys):
    assert main([*SEED, "--split", "even", "--cp", "1", "--emit", "megatron"]) == 0
    out = capsys.readouterr().out.replace("\n#   ", " ")
    assert "PP=8 across nodes (interleaved 1F1B, 5 stages per rank); 134 s/step" in out
    assert "--num-layers-per-virtual-pipeline-stage 2 \\" in out
    assert "--pipeline-model-parallel-layout" not in out
    assert "--context-parallel-size" not in out


def _first_even(report, tool):
    data = tool_data(tool)
    return next((rank, p) for rank, p in enumerate(report.fitting, 1)
                if p.config.split_name == "even" and (p.config.pp == 1 or p.config.schedule
                                                     in data.schedules)
                and report.model.layers % (p.config.pp * p.config.chunks) == 0)


@pytest.mark.parametrize("tool", ["nemo", "torchtitan"])
def test_a_split_the_tool_cannot_express_falls_back(seed_report, tool):
    text = emit_training(seed_report, tool).replace("\n#   ", " ")
    name = tool_data(tool).tool
    assert (f"{name} cannot run the winner (tp2 cp2 pp8 dp1 1f1b mb1 selective balanced) as "
            f"planned: {name} splits the 80 layers evenly over the pp·v = 8 stages and cannot "
            "express this plan's balanced split (E,t*8|t*10|t*10|(t*11|)*3t*10|t*9,L)") in text
    rank, fallback = _first_even(seed_report, tool)
    assert f"#{rank} {fallback.config.label()}" in text
    assert f"context_parallel_{'size' if tool == 'nemo' else 'degree'}" in text


def test_zbv_is_not_a_megatron_schedule(seed_report):
    report = seed_report
    zbv = [p for p in report.fitting if p.config.schedule == "zb-v"]
    rest = [p for p in report.fitting if p.config.schedule != "zb-v"]
    ordered = type(report)(report.model, report.training, report.cluster,
                           (zbv[0], *rest), report.headroom)
    text = emit_training(ordered, "megatron").replace("\n#   ", " ")
    assert (f"Megatron-LM cannot run the winner ({zbv[0].config.label()}) as planned: "
            "Megatron-LM has no zb-v schedule (it runs 1f1b, interleaved-1f1b)") in text
    assert f"#2 {rest[0].config.label()}" in text


def test_torchtitan_runs_zbv_itself(seed_report):
    report = seed_report
    zbv = [p for p in report.fitting
           if p.config.schedule == "zb-v" and p.config.split_name == "even"]
    only = type(report)(report.model, report.training, report.cluster, tuple(zbv),
                        report.headroom)
    text = emit_training(only, "torchtitan")
    assert "cannot run" not in text and 'pipeline_parallel_schedule = "ZBVZeroBubble"' in text
    assert "[parallelism]" in text and f"tensor_parallel_degree = {zbv[0].config.tp}" in text


def test_a_tool_that_can_run_nothing_fitting_is_an_error(seed_report):
    report = seed_report
    fitting_zbv = [p for p in report.fitting if p.config.schedule == "zb-v"]
    only = type(report)(report.model, report.training, report.cluster, tuple(fitting_zbv),
                        report.headroom)
    with pytest.raises(ValueError, match="DeepSpeed can run none of the"):
        emit_training(only, "deepspeed")


def test_undocumented_settings_are_refused():
    with pytest.raises(ValueError, match="--tensor-parallel is not among Megatron-LM"):
        check(Emission("megatron", (("--tensor-parallel", 4),)))
    with pytest.raises(ValueError, match="not a value Megatron-LM accepts"):
        check(Emission("megatron", (("--recompute-granularity", "partial"),)))


@pytest.fixture(scope="module")
def serving_report():
    return inference_search(model_preset("llama3-70b"), cluster_preset("dgx-h100", 4),
                            Workload(2048, 128, 64), "throughput")


@pytest.mark.parametrize("tool", list(SERVING_EMITTERS))
def test_serving_emissions_use_documented_names_only(tool, serving_report):
    text = emit_serving(serving_report, tool)
    names = _emitted_names(text, tool)
    assert names and set(names) <= set(tool_data(tool).flags), names


def test_inference_emit_vllm_prints_vllm_flags(capsys):
    assert main(["plan", "--inference", "--model", "llama3-70b", "--cluster", "dgx-h100",
                 "--nodes", "4", "--emit", "vllm"]) == 0
    out = capsys.readouterr().out
    assert "vllm serve meta-llama/Meta-Llama-3-70B" in out
    assert out.startswith("# tp16×pp1×dp2 (TP-heavy) beats tp4×pp8×dp1 (PP-heavy)")
    for flag, value in (("--tensor-parallel-size", 16), ("--pipeline-parallel-size", 1),
                        ("--data-parallel-size", 2)):
        assert f"{flag} {value} \\" in out
    assert set(_emitted_names(out, "vllm")) <= set(tool_data("vllm").flags)


@pytest.mark.parametrize("argv,message", [
    ([*SEED, "--emit", "vllm"], "--emit vllm prints a serving layout: add --inference"),
    (["plan", "--inference", "--model", "llama3-70b", "--cluster", "dgx-h100",
      "--emit", "megatron"], "--emit megatron is for training plans"),
])
def test_emit_must_match_the_kind_of_plan(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
