"""The heap policy (kernels.heap): freed memory stays in the process during a step, so a
step stops faulting its pages in again; blocks nest; bad policies are refused."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ringpipe.kernels.heap import HeapPolicy, heap_is_tunable, retained_heap
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.model.params import init_params
from ringpipe.plan.training import Plan
from ringpipe.verify.training import random_batch

needs_glibc = pytest.mark.skipif(not heap_is_tunable(), reason="the C library is not glibc")


#: Run in a fresh interpreter: the thresholds, and what the heap already holds, are the
#: whole process's, so what earlier tests left behind would change the counts.
FAULT_SCRIPT = """
import json, resource
from ringpipe.kernels.heap import HeapPolicy, retained_heap
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.model.params import init_params
from ringpipe.plan.training import Plan
from ringpipe.verify.training import random_batch

cfg = ModelConfig(layers=4, hidden=128, heads=4, seq=8)
params = init_params(cfg, 0)
plan = Plan(cfg, Mesh(dp=1, pp=2, tp=1), schedule="1f1b", microbatches=4)
batch = random_batch(cfg, 8, 1)

def faults(fn):
    fn()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(2):
        fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

glibc = lambda: plan.run(params, batch, backend="numpy", heap=HeapPolicy(retain=False))
step = lambda: plan.run(params, batch, backend="numpy")
out = {"glibc": faults(glibc)}
with retained_heap(HeapPolicy()) as held:
    out["held"] = held
    with retained_heap(HeapPolicy()):
        step()
    out["after_inner"] = faults(step)
print(json.dumps(out))
"""


@needs_glibc
def test_retained_steps_stop_refaulting_and_blocks_nest():
    """glibc's own thresholds (a fresh process) refault thousands of pages a step; a
    loop holding the policy, none to speak of, also after an inner block has come and
    gone (had it restored the defaults, every array above 128 KiB would be mapped
    anew)."""
    done = subprocess.run([sys.executable, "-c", FAULT_SCRIPT], capture_output=True,
                          text=True, timeout=300, check=True)
    counts = json.loads(done.stdout)
    assert counts["held"] is True
    assert counts["glibc"] > 2000
    assert counts["after_inner"] < counts["glibc"] / 20


def test_retain_off_changes_nothing():
    with retained_heap(HeapPolicy(retain=False)) as held:
        assert held is False


def test_the_policy_changes_no_number():
    cfg = ModelConfig(layers=2, hidden=64, heads=4, seq=8)
    params = init_params(cfg, 0)
    plan = Plan(cfg, Mesh(dp=1, pp=2, tp=1), schedule="1f1b", microbatches=4)
    batch = random_batch(cfg, 8, 1)
    same = plan.run(params, batch, backend="numpy")
    other = plan.run(params, batch, backend="numpy", heap=HeapPolicy(retain=False))
    assert same.loss == other.loss
    assert all(np.array_equal(same.grads[k], other.grads[k]) for k in same.grads)


@pytest.mark.parametrize("kwargs, error, words", [
    ({"retain": 1}, TypeError, "HeapPolicy.retain must be a bool"),
    ({"mmap_threshold": 1 << 40}, ValueError, "HeapPolicy.mmap_threshold"),
    ({"trim_threshold": 10}, ValueError, "HeapPolicy.trim_threshold"),
])
def test_bad_policies_are_refused(kwargs, error, words):
    with pytest.raises(error, match=words):
        HeapPolicy(**kwargs)


def test_retained_heap_wants_a_policy():
    with pytest.raises(TypeError, match="heap must be a HeapPolicy, got dict"):
        with retained_heap({}):  # type: ignore[arg-type]
            pass
