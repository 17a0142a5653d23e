"""Inference work is bounded up front: decode's token steps, the KV cache and prefill
activations sized by --prompt-len/--new-tokens/--batch (not --seq)."""

import argparse

import numpy as np
import pytest

from ringpipe.cli import main
from ringpipe.cli.limits import PROCESS_BYTES, check_command, inference_memory
from ringpipe.limits import LIMITS_VAR as ENV_VAR
from ringpipe.limits import Limits
from ringpipe.model.config import ModelConfig
from ringpipe.model.generate import generate
from ringpipe.model.params import init_params


def verify_inf(**kw):
    base = dict(command="verify", inference=True, dp=1, pp=1, tp=1, layers=None, hidden=32,
                heads=4, kv_heads=None, vocab=0, batch=None, microbatches=None,
                prompt_len=8, new_tokens=4, seq=8)
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize("args,limit", [
    (argparse.Namespace(command="schedule", name="decode", stages=10, microbatches=10,
                        chunks=100000), "max_stages"),
    (argparse.Namespace(command="schedule", name="decode", stages=10, microbatches=1000,
                        chunks=100), "max_schedule_cells"),
    (verify_inf(new_tokens=10**8), "max_schedule_cells"),
    (verify_inf(prompt_len=6000), "max_memory"),
    (verify_inf(prompt_len=20000, hidden=64), "max_memory"),
    (verify_inf(batch=100000, prompt_len=64, new_tokens=64), "max_memory"),
])
def test_absurd_inference_work_is_refused(args, limit):
    with pytest.raises(ValueError, match=f"the limit {limit}=.*{ENV_VAR}={limit}="):
        check_command(args, Limits())


def test_seq_does_not_size_inference_and_ordinary_runs_pass():
    check_command(verify_inf(seq=100000), Limits())  # --seq is ignored by --inference
    check_command(verify_inf(tp=2, pp=2, prompt_len=512, new_tokens=64), Limits())
    check_command(argparse.Namespace(command="schedule", name="decode", stages=4,
                                     microbatches=4, chunks=64), Limits())


def test_estimate_grows_with_prompt_len_squared():
    small = inference_memory(2, 32, 4, 4, 64, 2, 1000, 1) - PROCESS_BYTES
    big = inference_memory(2, 32, 4, 4, 64, 2, 2000, 1) - PROCESS_BYTES
    assert 3.5 < big / small < 4.1


def test_cli_refuses_with_exit_2_naming_the_limit(capsys):
    assert main(["verify", "--inference", "--prompt-len", "6000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--prompt-len" in err and "max_memory" in err
    assert main(["schedule", "decode", "-p", "10", "-m", "10", "-v", "100000"]) == 2
    assert "max_stages" in capsys.readouterr().err


def test_generate_refuses_absurd_new_tokens_by_name():
    cfg = ModelConfig(layers=2, hidden=32, heads=4, seq=8, vocab=64)
    prompts = np.zeros((2, 8), dtype=np.int64)
    with pytest.raises(ValueError, match="new_tokens=1000000000000 .*max_memory"):
        generate(cfg, init_params(cfg, 0), prompts, 10**12)
