"""Other tools' names accepted: Megatron-LM's flags for plan and verify, PyTorch's
schedule class names wherever a schedule is named, nccl-tests' options in the MPI
all-reduce tool."""

import argparse
import json
import os

import pytest

from ringpipe.cli import main
from ringpipe.cli.names.aliases import PLAN_ALIASES, VERIFY_ALIASES
from ringpipe.cli.ranks import allreduce
from ringpipe.environment import Environment
from ringpipe.mpi.launch import launch
from ringpipe.schedules import SCHEDULES
from ringpipe.schedules.registry import (
    PYTORCH_SCHEDULE_CLASSES,
    canonical_schedule,
    schedule_aliases,
)


def _out(capsys, argv):
    assert main(argv) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_plan_takes_megatrons_flags(capsys):
    ours = ["plan", "--model", "llama2-7b", "--cluster", "dgx-a100", "--tp", "2", "--pp", "2",
            "--global-batch", "64", "--microbatch-size", "2", "--seq", "2048",
            "--recompute", "selective", "--stages-per-rank", "2",
            "--schedule", "interleaved-1f1b", "--json", "--top", "2"]
    megatron = ["plan", "--model", "llama2-7b", "--cluster", "dgx-a100",
                "--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size", "2",
                "--global-batch-size", "64", "--micro-batch-size", "2", "--seq-length", "2048",
                "--recompute-granularity", "selective",
                "--num-virtual-stages-per-pipeline-rank", "2",
                "--schedule", "ScheduleInterleaved1F1B", "--json", "--top", "2"]
    a, b = json.loads(_out(capsys, ours)), json.loads(_out(capsys, megatron))
    assert a["candidates"] == b["candidates"] and a["model"] == b["model"]
    assert a["candidates"][0]["schedule"] == "interleaved-1f1b"


def test_plan_takes_megatrons_model_size_flags(capsys):
    flags = ["--num-layers", "8", "--hidden-size", "1024", "--num-attention-heads", "16",
             "--seq-length", "512", "--vocab-size", "32000", "--ffn-hidden-size", "2816",
             "--num-query-groups", "4"]
    doc = json.loads(_out(capsys, ["plan", *flags, "--cluster", "dgx-a100",
                                   "--global-batch-size", "16", "--json", "--top", "1"]))
    m = doc["model"]
    assert (m["layers"], m["hidden"], m["heads"], m["seq"], m["vocab"], m["ffn"],
            m["kv_heads"]) == (8, 1024, 16, 512, 32000, 2816, 4)


def test_verify_takes_megatrons_flags_and_micro_batch_size(capsys):
    ours = ["verify", "--backend", "numpy", "--tp", "2", "--pp", "2", "--layers", "4",
            "--hidden", "16", "--heads", "4", "--seq", "4", "--microbatches", "4",
            "--batch", "8", "--json"]
    megatron = ["verify", "--backend", "numpy", "--tensor-model-parallel-size", "2",
                "--pipeline-model-parallel-size", "2", "--num-layers", "4", "--hidden-size",
                "16", "--num-attention-heads", "4", "--seq-length", "4",
                "--micro-batch-size", "2", "--global-batch-size", "8", "--json"]
    a, b = json.loads(_out(capsys, ours)), json.loads(_out(capsys, megatron))
    assert a == b and a["ok"] is True


@pytest.mark.parametrize("argv,message", [
    (["--batch", "6", "--micro-batch-size", "4"], "--batch 6 is not a multiple of dp"),
    (["--batch", "8", "--micro-batch-size", "2", "--microbatches", "2"],
     "--microbatches 2 contradicts --batch 8"),
])
def test_verify_micro_batch_size_must_agree(argv, message, capsys):
    assert main(["verify", "--backend", "numpy", "--pp", "2", *argv]) == 2
    assert message in capsys.readouterr().err


def test_alias_tables_name_megatron_flags_only_once():
    for table in (PLAN_ALIASES, VERIFY_ALIASES):
        names = [n for aliases in table.values() for n in aliases]
        assert len(names) == len(set(names)) and all(n.startswith("--") for n in names)


def test_pytorch_schedule_names_in_one_table():
    assert schedule_aliases() == {k: v for k, v in PYTORCH_SCHEDULE_CLASSES.items()
                                  if v in SCHEDULES}
    assert {"Schedule1F1B", "ScheduleGPipe", "ScheduleInterleaved1F1B",
            "ScheduleInterleavedZeroBubble", "ScheduleZBVZeroBubble"} <= set(schedule_aliases())
    assert canonical_schedule("ScheduleZBVZeroBubble") == "zb-v"
    assert canonical_schedule("interleaved1f1b") == "interleaved-1f1b"  # torchtitan's form
    assert canonical_schedule("1fb1") == "1fb1"  # unknown names reach the choice check


def test_schedule_command_takes_pytorch_class_names(capsys):
    ours = _out(capsys, ["schedule", "1f1b", "--stages", "2", "--microbatches", "2"])
    theirs = _out(capsys, ["schedule", "Schedule1F1B", "--stages", "2", "--microbatches", "2"])
    assert ours == theirs and ours.startswith("1f1b: p=2 m=2")


def test_verify_takes_pytorch_class_names(capsys):
    text = _out(capsys, ["verify", "--backend", "numpy", "--pp", "2", "--schedule",
                         "ScheduleZBVZeroBubble", "--microbatches", "2", "--block", "mlp"])
    assert "schedule='zb-v'" in text and "# OK" in text


def _allreduce_args(argv):
    p = argparse.ArgumentParser()
    allreduce.add_arguments(p)
    return p.parse_args(argv)


def test_allreduce_takes_nccl_tests_options():
    args = _allreduce_args(["-b", "8", "-e", "128M", "-f", "2", "-g", "1", "-o", "max",
                            "-n", "5"])
    assert (args.min_bytes, args.max_bytes, args.factor, args.ngpus, args.op, args.iters) == (
        8, 128 << 20, 2, 1, "max", 5)
    allreduce.prepare(args, Environment())  # accepted: one rank per process, a step-table op
    for argv, message in ((["-g", "2"], "-g 2: ringpipe runs one rank per process"),
                          (["-o", "prod"], "-o prod: the step tables reduce with sum")):
        with pytest.raises(ValueError, match=message):
            allreduce.prepare(_allreduce_args(argv), Environment())


@pytest.mark.mpi
def test_allreduce_with_nccl_tests_options_is_exact_for_max():
    job = launch(2, ["-m", "ringpipe.mpi", "allreduce", "-b", "4K", "-e", "16K", "-f", "4",
                     "-g", "1", "-o", "max", "-n", "2", "--reps", "1", "--json"],
                 timeout=120, capture=True, env={**os.environ})
    assert job.returncode == 0, job.stderr
    rows = json.loads(job.stdout)["rows"]
    assert {r["size_bytes"] for r in rows} == {4096, 16384}
    assert all(r["redop"] == "max" and r["wrong"] == 0 for r in rows)
