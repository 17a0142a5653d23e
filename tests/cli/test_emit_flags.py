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
    assert out.startswith("# Verdict: TP=4 inside each node, PP=8 across nodes")
    # ZB-V is not a Megatron-LM schedule: said so, and the best plan it can run emitted
    assert "Megatron-LM cannot run the winner (tp4 pp8 dp1 zb-v v2 mb1 selective)" in out
    assert "#2 tp4 pp8 dp1 interleaved-1f1b v5 mb1 selective" in out
    for flag, value in (("--tensor-model-parallel-size", "4"),
                        ("--pipeline-model-parallel-size", "8"),
                        ("--num-layers-per-virtual-pipeline-stage", "2"),
                        ("--recompute-granularity", "selective"), ("--micro-batch-size", "1"),
                        ("--global-batch-size", "512"), ("--seq-length", "8192")):
        assert f"{flag} {value}" in out
    for switch in ("--sequence-parallel", "--use-distributed-optimizer",
                   "--overlap-grad-reduce"):
        assert f"{switch} \\" in out or out.rstrip().endswith(switch)
    flags = _emitted_names(out, "megatron")
    assert set(flags) <= set(tool_data("megatron").flags)


def test_torchtitan_runs_zbv_itself(seed_report):
    text = emit_training(seed_report, "torchtitan")
    assert "cannot run" not in text and 'pipeline_parallel_schedule = "ZBVZeroBubble"' in text
    assert "[parallelism]" in text and "tensor_parallel_degree = 4" in text


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
    assert "--tensor-parallel-size 8" in out and "--pipeline-parallel-size 1" in out
    assert set(_emitted_names(out, "vllm")) <= set(tool_data("vllm").flags)


@pytest.mark.parametrize("argv,message", [
    ([*SEED, "--emit", "vllm"], "--emit vllm prints a serving layout: add --inference"),
    (["plan", "--inference", "--model", "llama3-70b", "--cluster", "dgx-h100",
      "--emit", "megatron"], "--emit megatron is for training plans"),
])
def test_emit_must_match_the_kind_of_plan(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
