"""Flags of the other mode are refused, in both directions, by one mechanism
(:mod:`ringpipe.cli.modes`): training ``plan`` refuses the inference-only flags and
training ``verify`` refuses ``--prompt-len``/``--new-tokens``/``--kv-heads``, as
``--inference`` refuses the training flags; ``--stages-per-rank`` needs a schedule that
takes it. Sizes of zero are refused naming the flag (``verify --inference --dp 0`` was
an internal ZeroDivisionError)."""

from __future__ import annotations

import pytest

from ringpipe.cli import main
from ringpipe.cli.modes import INFERENCE, TRAINING, ModeFlag, check_mode
from ringpipe.cli.plan.inference import PLAN_MODE_FLAGS
from ringpipe.cli.verify.inference import VERIFY_MODE_FLAGS

PLAN = ["plan", "--model", "gpt3-175b", "--cluster", "dgx-a100", "--nodes", "8",
        "--global-batch", "64", "--top", "1"]
PLAN_INFERENCE = ["plan", "--inference", "--model", "llama2-7b", "--cluster", "dgx-a100",
                  "--top", "1"]


def one_line(capsys) -> str:
    out, err = capsys.readouterr()
    assert not out and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("extra,flag", [
    (["--batch", "-1"], "--batch"), (["--prompt-len", "-1"], "--prompt-len"),
    (["--ttft-slo-ms", "nan"], "--ttft-slo-ms"), (["--output-len", "64"], "--output-len"),
    (["--objective", "throughput"], "--objective"),
    (["--tpot-slo-ms", "5"], "--itl-slo-ms"),  # the alias is named by its main spelling
    (["--prompt-len", "2048"], "--prompt-len"),  # even the inference default
    (["--isl", "64"], "--prompt-len"), (["--rate", "2"], "--rate"),
    (["--concurrency", "4"], "--concurrency"), (["--trace", "t.csv"], "--trace"),
    (["--block-size", "16"], "--block-size"),  # even the serving default
    (["--no-chunked-prefill"], "--no-chunked-prefill"),
])
def test_training_plan_refuses_inference_flags(capsys, extra, flag):
    assert main([*PLAN, *extra]) == 2
    assert f"{flag} does not apply to training (without --inference)" in one_line(capsys)


@pytest.mark.parametrize("extra,flag", [
    (["--prompt-len", "-1"], "--prompt-len"), (["--new-tokens", "-1"], "--new-tokens"),
    (["--kv-heads", "-1"], "--kv-heads"), (["--prompt-len", "8"], "--prompt-len"),
    (["--requests", "4"], "--requests"), (["--rate", "5"], "--rate"),
    (["--max-num-seqs", "8"], "--max-num-seqs"),
])
def test_training_verify_refuses_inference_flags(capsys, extra, flag):
    assert main(["verify", *extra]) == 2
    assert f"{flag} does not apply to training (without --inference)" in one_line(capsys)


@pytest.mark.parametrize("extra,flag", [
    (["--seq", "8"], "--seq"), (["--schedule", "1f1b"], "--schedule"),  # even the defaults
    (["--stages-per-rank", "2"], "--stages-per-rank"), (["--cluster-file", "c"], "--cluster-file"),
    (["--layout", "E,t|t,L"], "--layout"), (["--split", "even"], "--split"),
    (["--schedule-csv", "s.csv"], "--schedule-csv"),
])
def test_inference_verify_refuses_training_flags(capsys, extra, flag):
    assert main(["verify", "--inference", *extra]) == 2
    assert f"{flag} does not apply to --inference" in one_line(capsys)


@pytest.mark.parametrize("argv,message", [
    (["verify", "--inference", "--rate", "5"], "--rate applies only with --requests"),
    (["verify", "--inference", "--block-size", "4"], "--block-size applies only with --requests"),
    ([*PLAN_INFERENCE, "--block-size", "16"], "--block-size needs --rate, --concurrency or"),
    ([*PLAN_INFERENCE, "--no-chunked-prefill"], "--no-chunked-prefill needs --rate"),
    ([*PLAN_INFERENCE, "--split", "even"], "--split does not apply to --inference"),
])
def test_knobs_of_continuous_batching_need_a_load(capsys, argv, message):
    assert main(argv) == 2
    assert message in one_line(capsys)


def test_stages_per_rank_needs_a_schedule_that_takes_it(capsys):
    assert main([*PLAN, "--stages-per-rank", "1000"]) == 2  # used to change nothing
    assert "--stages-per-rank 1000 needs --schedule" in one_line(capsys)
    assert main([*PLAN, "--stages-per-rank", "2", "--schedule", "1f1b"]) == 2
    assert "1f1b does not take chunks per rank" in one_line(capsys)
    assert main(["verify", "--stages-per-rank", "3"]) == 2  # verify's default 1f1b
    assert "does not take chunks per rank" in one_line(capsys)
    assert main([*PLAN, "--stages-per-rank", "2", "--schedule", "interleaved-1f1b",
                 "--json"]) in (0, 1)
    capsys.readouterr()


def test_both_modes_still_run_with_their_own_flags(capsys):
    assert main([*PLAN_INFERENCE, "--prompt-len", "512", "--batch", "4"]) == 0
    assert main(["verify", "--inference", "--prompt-len", "4", "--new-tokens", "2",
                 "--kv-heads", "2"]) == 0
    assert main(["verify", "--seq", "4", "--pp", "2", "--schedule", "gpipe"]) == 0
    capsys.readouterr()


def test_one_table_per_command_both_directions():
    for table in (PLAN_MODE_FLAGS, VERIFY_MODE_FLAGS):
        modes = {f.mode for f in table}
        assert modes == {TRAINING, INFERENCE}
        assert len({f.flag for f in table}) == len(table)
    with pytest.raises(ValueError, match="mode must be"):
        ModeFlag("--x", "x", "serving", "why")

    class Args:
        x = None
        y = 3

    flags = (ModeFlag("--x", "x", TRAINING, "t", 5), ModeFlag("--y", "y", INFERENCE, "i"))
    args = Args()
    check_mode(args, flags, INFERENCE)
    assert args.x is None and args.y == 3
    with pytest.raises(ValueError, match="--y does not apply to training"):
        check_mode(args, flags, TRAINING)


@pytest.mark.parametrize("argv,flag", [
    (["verify", "--inference", "--dp", "0"], "--dp"),
    (["verify", "--inference", "--pp", "0"], "--pp"),
    (["verify", "--inference", "--tp", "-1"], "--tp"),
    (["verify", "--dp", "0"], "--dp"),
    (["verify", "--inference", "--microbatches", "0"], "groups"),
    (["verify", "--inference", "--batch", "0"], "batch"),
])
def test_zero_sizes_are_refused_naming_the_flag(capsys, argv, flag):
    assert main(argv) == 2
    err = one_line(capsys)
    assert f"{flag} must be >= 1" in err and "internal error" not in err
