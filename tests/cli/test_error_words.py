"""The issue's error-message reproducers, each as documented: one prefix, the
subcommand named, flags rather than parameter names, "did you mean", and the GPU count
that does not add up."""

import pytest

from ringpipe.cli import main
from ringpipe.cli.names.suggest import did_you_mean, plain_message


def _error(capsys, argv):
    status = main(argv)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err  # one line
    return status, err


def test_the_command_name_is_not_repeated(monkeypatch, tmp_path, capsys):
    import ringpipe.cli.calibrate.command as calibrate_cli

    def missing_cupy(options):
        raise ImportError("ringpipe calibrate: backend 'cupy' needs the cupy package, which "
                          'is not installed: pip install "ringpipe[gpu]"')

    monkeypatch.setattr(calibrate_cli, "calibrate", missing_cupy)
    status, err = _error(capsys, ["calibrate", "-o", str(tmp_path / "c.toml"), "--backend",
                                  "cupy"])
    assert status == 2 and err.startswith("error: ringpipe calibrate: backend 'cupy' needs")
    assert err.count("ringpipe calibrate:") == 1
    assert plain_message("ringpipe plan: ringpipe plan: x", "ringpipe plan") == "x"
    assert plain_message("ringpipe calibrate --backend cupy: x",  # the GPU path's own prefix
                         "ringpipe calibrate") == "--backend cupy: x"


@pytest.mark.parametrize("argv,expected", [
    (["plan", "--bogus"], "error: ringpipe plan: unrecognized arguments: --bogus"),
    (["verify", "--tpp", "2"], "error: ringpipe verify: unrecognized arguments: --tpp 2 "
                               "(did you mean --tp?)"),
    (["plan", "--globl-batch", "4"], "(did you mean --global-batch?)"),
    (["plan", "--tensor-parallel-size", "4"], "(did you mean --tensor-model-parallel-size?)"),
])
def test_unknown_flags_keep_the_subcommand(argv, expected, capsys):
    status, err = _error(capsys, argv)
    assert status == 2 and expected in err


def test_a_flag_like_no_other_gets_no_guess(capsys):
    """The leading dashes every flag shares do not make ``--bogus`` look like ``--osl``."""
    status, err = _error(capsys, ["plan", "--bogus"])
    assert status == 2 and "did you mean" not in err


@pytest.mark.parametrize("argv,flag,internal", [
    (["schedule", "interleaved-1f1b", "--stages", "4", "--microbatches", "3", "--chunks", "2"],
     "ringpipe schedule: --microbatches: interleaved 1F1B needs m to be a multiple of p",
     "num_microbatches"),
    (["schedule", "interleaved-1f1b", "--stages", "4", "--microbatches", "4", "--chunks", "1"],
     "ringpipe schedule: --stages-per-rank: interleaved 1F1B needs v >= 2", "chunks_per_rank"),
    (["verify", "--pp", "2", "--microbatches", "3", "--schedule", "interleaved-1f1b",
      "--chunks", "2"], "ringpipe verify: --microbatches:", "num_microbatches"),
    (["schedule", "zb-v", "--stages", "2", "--microbatches", "2", "--chunks", "3"],
     "--stages-per-rank: zb-v does not take chunks per rank", "chunks_per_rank"),
])
def test_errors_name_the_flags_not_the_parameters(argv, flag, internal, capsys):
    status, err = _error(capsys, argv)
    assert status == 2 and flag in err and internal not in err


@pytest.mark.parametrize("argv,guess", [
    (["schedule", "1fb1", "--stages", "2"], "did you mean '1f1b'?"),
    (["schedule", "interleaved", "--stages", "2"], "did you mean 'interleaved-1f1b'?"),
    (["verify", "--schedule", "zbv"], "did you mean 'zb-v'?"),
    (["plna"], "did you mean 'plan'?"),
])
def test_did_you_mean(argv, guess, capsys):
    status, err = _error(capsys, argv)
    assert status == 2 and guess in err and "invalid choice" in err


def test_did_you_mean_needs_something_close():
    assert did_you_mean("xyz", ["gpipe", "1f1b"]) is None
    assert did_you_mean("ZB-V", ["zb-v", "zb-h1"]) == "zb-v"


def test_pinned_degrees_that_need_more_gpus_say_so(capsys):
    status, err = _error(capsys, ["plan", "--model", "llama3-70b", "--cluster", "dgx-h100",
                                  "--nodes", "4", "--global-batch", "512", "--tp", "8", "--pp",
                                  "8"])
    assert status == 2 and "tp × pp = 8 × 8 = 64 GPUs, but the cluster has 32" in err
    status, err = _error(capsys, ["plan", "--model", "llama3-70b", "--cluster", "dgx-h100",
                                  "--nodes", "3", "--global-batch", "512", "--tp", "8", "--pp",
                                  "2"])
    assert "tp × pp = 8 × 2 = 16 GPUs, which does not divide the cluster's 24" in err
