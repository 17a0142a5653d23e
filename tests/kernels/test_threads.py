"""The thread policy: each rank's fair share of the cores, applied to the BLAS and Numba
pools for a block and restored after it; the in-process runtime and calibrate use it."""

import numba
import numpy as np
import pytest

import ringpipe.measure.calibrate.run as calibrate_run
import ringpipe.runtime.inproc as inproc
from ringpipe.kernels.threads import (
    ThreadPolicy,
    available_cores,
    blas_libraries,
    blas_threads,
    check_threads,
    environment_policy,
    limit_threads,
)
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.model.params import init_params
from ringpipe.plan.training import Plan
from ringpipe.verify.training import random_batch


def test_fair_share_divides_the_cores_and_never_gives_zero():
    assert ThreadPolicy.fair_share(2, cores=8).blas == 4
    assert ThreadPolicy.fair_share(3, cores=8).blas == 2
    assert ThreadPolicy.fair_share(4, cores=2) == ThreadPolicy(1, 1, ThreadPolicy.fair_share(
        4, cores=2).reason)
    assert ThreadPolicy.fair_share(1, cores=2).numba == 2
    assert "2 cores / 4 ranks" in ThreadPolicy.fair_share(4, cores=2).describe()


def test_a_requested_count_wins_over_the_fair_share():
    policy = ThreadPolicy.fair_share(8, cores=2, requested=3)
    assert (policy.blas, policy.numba) == (3, 3) and "OPENBLAS" in policy.reason


def test_node_share_divides_the_node_and_respects_affinity_and_the_pools():
    with limit_threads(ThreadPolicy(16, 1)):  # pools at least as large as any share below
        # 4 ranks on a 32-core node: 8 each, unless affinity gives a rank fewer cores
        assert ThreadPolicy.node_share(4, cores=32, node_cores=32).blas == min(8, blas_threads())
        assert ThreadPolicy.node_share(4, cores=2, node_cores=32).blas == 2
        assert "32 cores / 4 ranks on this node" in ThreadPolicy.node_share(
            4, cores=32, node_cores=32).reason
    with limit_threads(ThreadPolicy(1, 1)):  # a count set at start-up is never raised
        policy = ThreadPolicy.node_share(1, cores=8, node_cores=8)
        assert (policy.blas, policy.numba) == (1, 1)
    # the environment's count (the command-line ranks pass it instead)
    assert environment_policy(None) is None
    assert environment_policy(2) == ThreadPolicy.fair_share(1, requested=2)
    with pytest.raises(ValueError, match="local_ranks"):
        ThreadPolicy.node_share(0)
    check_threads("f", None)
    with pytest.raises(TypeError, match="f: threads must be a ThreadPolicy, got int"):
        check_threads("f", 2)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_policy_counts_are_checked(bad):
    with pytest.raises((TypeError, ValueError), match="ThreadPolicy.blas"):
        ThreadPolicy(bad, 1)
    with pytest.raises((TypeError, ValueError), match="ranks"):
        ThreadPolicy.fair_share(bad)


def test_numpy_blas_is_found_and_controllable():
    assert available_cores() >= 1
    libs = blas_libraries()
    assert libs, "NumPy's BLAS (OpenBLAS, MKL or BLIS) was not found among loaded libraries"
    assert blas_threads() == libs[0].threads() >= 1


@pytest.mark.parametrize("count", [1, 3])
def test_limit_threads_sets_both_pools_and_restores_them(count):
    before_blas, before_numba = blas_threads(), numba.get_num_threads()
    with limit_threads(ThreadPolicy(count, 1)) as policy:
        assert policy.blas == count
        assert blas_threads() == count
        assert numba.get_num_threads() == 1
        np.ones((64, 64)) @ np.ones((64, 64))  # BLAS still computes
    assert (blas_threads(), numba.get_num_threads()) == (before_blas, before_numba)


def test_limit_threads_restores_after_an_error():
    before = blas_threads()
    with pytest.raises(RuntimeError, match="boom"), limit_threads(ThreadPolicy(1, 1)):
        raise RuntimeError("boom")
    assert blas_threads() == before
    with pytest.raises(TypeError, match="ThreadPolicy"), limit_threads(2):
        pass


def _spy(monkeypatch, module, name):
    """Replace module.name with a wrapper recording the BLAS threads while it runs."""
    seen = []
    real = getattr(module, name)

    def spy(*args, **kwargs):
        seen.append((blas_threads(), numba.get_num_threads()))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return seen


def test_inprocess_runtime_runs_under_the_given_policy_and_restores(monkeypatch):
    seen = _spy(monkeypatch, inproc, "_run")
    cfg = ModelConfig(layers=2, hidden=8, heads=2, seq=4)
    plan = Plan(cfg, Mesh(pp=2), schedule="1f1b", microbatches=2)
    params, batch = init_params(cfg, 0), random_batch(cfg, 4, 1)
    before = blas_threads()
    plan.run(params, batch, threads=ThreadPolicy(3, 1))
    plan.run(params, batch)  # default: the fair share of this machine among 2 ranks
    assert seen == [(3, 1), (ThreadPolicy.fair_share(2).blas, ThreadPolicy.fair_share(2).numba)]
    assert blas_threads() == before


def test_runtime_refuses_other_options():
    cfg = ModelConfig(layers=1, hidden=8, heads=2, seq=4)
    plan = Plan(cfg, Mesh(), schedule="1f1b", microbatches=1)
    from ringpipe.runtime import run
    with pytest.raises(TypeError, match="device"):
        run(plan, init_params(cfg, 0), random_batch(cfg, 1, 1), "numpy", device="cpu")


def test_calibrate_measures_under_its_policy(monkeypatch):
    monkeypatch.setattr(calibrate_run, "_calibrate",
                        lambda options: ({"threads": blas_threads()}, []))
    before = blas_threads()
    options = calibrate_run.CalibrateOptions(quick=True, threads=ThreadPolicy(3, 1))
    assert calibrate_run.calibrate(options)[0] == {"threads": 3}
    assert blas_threads() == before
    default = calibrate_run.CalibrateOptions(nprocs=2)
    assert default.policy == ThreadPolicy.fair_share(2)
    with pytest.raises(TypeError, match="ThreadPolicy"):
        calibrate_run.CalibrateOptions(threads=2)


def test_a_one_thread_policy_runs_large_collectives_serially(monkeypatch):
    import ringpipe
    import ringpipe.kernels.numba_exec as numba_exec
    import ringpipe.kernels.numba_oneshot as oneshot

    def pool(*args, **kwargs):
        raise AssertionError("the thread pool was used under a one-thread policy")

    bufs = [np.full(1 << 16, float(r), np.float32) for r in range(8)]  # 8 x 256 KiB
    monkeypatch.setattr(numba_exec, "_run_parallel", pool)
    monkeypatch.setattr(oneshot, "_run_parallel", pool)
    with limit_threads(ThreadPolicy(1, 1)):
        ringpipe.all_reduce(bufs, "ring", "numba")
        outs = [np.empty_like(b) for b in bufs]
        ringpipe.all_reduce(bufs, "tree", "numba", out=outs)
        ringpipe.all_reduce(tuple(bufs), "ring", "numba", out=tuple(outs))
    assert all((b == 28.0).all() for b in bufs) and all((o == 224.0).all() for o in outs)
