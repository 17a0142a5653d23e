"""The validator's and simulator's loops give the same answers as plain Python (small
schedules, before anything compiled) and compiled with Numba (``ringpipe.kernels.jit``)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ringpipe.kernels import jit

# Every built-in training schedule at a size whose arrays exceed jit.SMALL_WORK when
# compiled, validated and simulated with uneven float costs and a message latency.
PROGRAM = r"""
import json, sys
from ringpipe.kernels import jit
jit.SMALL_WORK = int(sys.argv[1])
from ringpipe.schedules import SCHEDULES, CostModel, add_communication, generate, simulate
out = {}
for name, spec in SCHEDULES.items():
    v = 2 if spec.takes_chunks else None
    sched = add_communication(generate(name, 4, 8, v))
    n = sched.num_stages
    costs = CostModel(forward=[1.0 + 0.1 * s for s in range(n)],
                      backward_input=[1.3] * n, backward_weight=[0.7 + 0.01 * s for s in range(n)],
                      p2p_latency=0.05)
    r = simulate(sched, costs)
    out[name] = [r.makespan.hex(), r.bubble_fraction.hex(), [b.hex() for b in r.busy],
                 list(r.peak_activations), list(r.peak_pending_weight_passes)]
print(json.dumps({"results": out, "numba": "numba" in sys.modules}))
"""


def _run(small_work: int) -> dict:
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(small_work)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_plain_python_and_numba_agree_bit_for_bit():
    python, compiled = _run(10**9), _run(-1)
    assert python["numba"] is False and compiled["numba"] is True
    assert python["results"] == compiled["results"]
    assert set(python["results"]) >= {"gpipe", "1f1b", "interleaved-1f1b", "zb-h1", "zb-v"}


def test_small_inputs_run_uncompiled():
    calls = []

    def loop(a):
        calls.append(type(a).__name__)
        return a.sum()

    kernel = jit.LazyKernel(loop)
    assert kernel(np.arange(4)) == 6 and kernel.dispatcher is None
    assert kernel.py_func is loop and kernel.__name__ == "loop"
