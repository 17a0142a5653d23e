"""Every option reaches the MPI ranks as ``--flag=value`` (:func:`plan_argv`,
:func:`inference_argv`), so a value that starts with ``-`` (``--cluster-file=-cal.toml``)
reads on the ranks as the value it is, and the ranks rebuild the very arguments the
command line parsed."""

from __future__ import annotations

import argparse

import pytest

from ringpipe.cli import build_parser, main
from ringpipe.cli.args.plan import inference_argv, plan_argv
from ringpipe.cli.ranks.main import build_parser as rank_parser
from ringpipe.cli.verify.inference import check_verify_mode
from ringpipe.cost.clusterfile.writer import dumps
from ringpipe.environment import Environment

CALIBRATED = {"name": "lab", "gpus_per_node": 2, "peak_tflops": 0.05, "memory_gib": 4.0,
              "memory_bandwidth_gbs": 10.0,
              "intra_node": {"bandwidth_gbs": 2.5, "latency_us": 3.0},
              "inter_node": {"bandwidth_gbs": 2.5, "latency_us": 3.0},
              "measured": {"cores": 2}}


def _parsed(argv: list[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    check_verify_mode(args)
    return args


@pytest.mark.parametrize("argv,to_ranks", [
    (["verify", "--pp", "2", "--cluster-file=-cal.toml", "--seed", "3"], plan_argv),
    (["verify", "--inference", "--pp", "2", "--prompt-len", "5", "--kv-heads", "2"],
     inference_argv),
])
def test_every_option_is_joined_to_its_value_and_round_trips(argv, to_ranks):
    args = _parsed(argv)
    forwarded = to_ranks(args)
    options = [a for a in forwarded if a.startswith("--")]
    assert all("=" in a for a in options if a not in ("--inference", "--json", "--verbose",
                                                      "--allow-cross-node-tp"))
    back = rank_parser(Environment()).parse_args(["verify", *forwarded])
    check_verify_mode(back)
    for dest in ("pp", "tp", "dp", "seq", "schedule", "cluster_file", "seed", "prompt_len",
                 "new_tokens", "kv_heads", "hidden", "vocab", "inference"):
        assert getattr(back, dest) == getattr(args, dest), dest
    if "--cluster-file=-cal.toml" in argv:
        assert "--cluster-file=-cal.toml" in forwarded


@pytest.mark.mpi
def test_a_path_starting_with_a_dash_works_under_mpi(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-cal.toml").write_text(dumps(CALIBRATED))
    argv = ["verify", "--pp", "2", "--microbatches", "2", "--hidden", "16", "--heads", "4",
            "--seq", "4", "--cluster-file=-cal.toml"]
    assert main([*argv, "--backend", "numpy"]) == 0  # in-process, as before
    assert main([*argv, "--backend", "mpi"]) == 0  # the ranks read it too
    out, err = capfd.readouterr()
    assert "expected one argument" not in err and out.count("predicted") >= 2, (out, err)
