"""ringpipe.limits: the bounds, their override, and the estimates per command."""

import argparse

import pytest

from ringpipe.cli.limits import check_command
from ringpipe.environment import Environment
from ringpipe.limits import LIMITS_VAR as ENV_VAR
from ringpipe.limits import Limits, parse_size


def ns(command, **kw):
    return argparse.Namespace(command=command, **kw)


def _from_env(environ):
    return Environment.read(environ).limits


def test_defaults_and_override_from_the_environment():
    assert _from_env({}) == Limits()
    limits = _from_env({ENV_VAR: "max_ranks=20000, max_memory=16G"})
    assert limits.max_ranks == 20000 and limits.max_memory == 16 << 30
    assert limits.max_stages == Limits().max_stages
    with pytest.raises(ValueError, match="name=value"):
        _from_env({ENV_VAR: "max_rank=3"})
    with pytest.raises(ValueError, match="not a size"):
        _from_env({ENV_VAR: "max_ranks=lots"})
    with pytest.raises(AttributeError):
        Limits().max_ranks = 3  # frozen


def test_parse_size_binary_multiples():
    assert [parse_size("x", t) for t in ("4096", "4K", "16M", "1G", "2GiB")] == [
        4096, 4096, 16 << 20, 1 << 30, 2 << 30]


def test_message_names_the_limit_and_the_override():
    with pytest.raises(ValueError) as info:
        check_command(ns("demo", ranks=20000, min_bytes=4096, max_bytes=4096), Limits())
    assert str(info.value) == ("--ranks = 20000 exceeds the limit max_ranks=1024; if you "
                               f"mean it, raise the limit: {ENV_VAR}=max_ranks=20000")


@pytest.mark.parametrize("args,limit", [
    (ns("schedule", name="1f1b", stages=10000, microbatches=100000, chunks=None),
     "max_stages"),
    (ns("schedule", name="1f1b", stages=1000, microbatches=1000, chunks=None),
     "max_schedule_cells"),
    (ns("schedule", name="interleaved-1f1b", stages=600, microbatches=8, chunks=2),
     "max_stages"),
    (ns("schedule", name="1f1b", stages=4, microbatches=10**20, chunks=None),
     "max_microbatches"),
    (ns("verify", layers=10**9, dp=1, pp=1, tp=1), "max_layers"),
    (ns("verify", dp=100000, pp=1, tp=1, layers=None), "max_ranks"),
    (ns("verify", layers=2000, hidden=512, dp=1, pp=1, tp=1), "max_memory"),
    (ns("verify", tp=2, pp=2, dp=2, np=5000), "max_ranks"),
    (ns("demo", ranks=8, min_bytes=1 << 30, max_bytes=1 << 30), "max_memory"),
    (ns("allreduce", min_bytes=4096, max_bytes=8 << 30, algorithms="ring"), "max_memory"),
    (ns("plan", nodes=10**7), "max_nodes"),
    (ns("allreduce", min_bytes=4096, max_bytes=1 << 30, algorithms="ring,tree,mpi",
        out_of_place=True), "max_memory"),  # 12 buffers of 1 GiB: out of place counts
    (ns("calibrate", np=100000, max_ranks=None), "max_ranks"),
    (ns("calibrate", np=None, max_ranks=5000), "max_ranks"),
])
def test_absurd_work_is_refused(args, limit):
    with pytest.raises(ValueError, match=f"the limit {limit}="):
        check_command(args, Limits())
    bigger = Limits(**{limit: 10**30})
    try:
        check_command(args, bigger)
    except ValueError as exc:  # another limit may still apply, never this one
        assert f"limit {limit}=" not in str(exc)


@pytest.mark.parametrize("args", [
    ns("schedule", name="zb-v", stages=8, microbatches=16, chunks=None),
    ns("verify", tp=2, pp=2, dp=2, layers=None, microbatches=None),
    ns("demo", ranks=8, min_bytes=4096, max_bytes=16 << 20),
    ns("allreduce", min_bytes=4096, max_bytes=64 << 20, algorithms="ring,tree,mpi"),
    ns("plan", nodes=None),
    ns("calibrate", np=4, max_ranks=None),
    ns("bench", quick=False),
    ns("allreduce", min_bytes=4096, max_bytes=64 << 20, algorithms="ring,tree,mpi",
       out_of_place=True),
    ns("unknown"),
])
def test_the_defaults_allow_ordinary_commands(args):
    check_command(args, Limits())


def test_bench_memory_is_checked_up_front():
    with pytest.raises(ValueError, match="the limit max_memory="):
        check_command(ns("bench", quick=True), Limits(max_memory=64 << 20))
