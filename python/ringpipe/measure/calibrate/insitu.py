"""What one array operation costs inside a training step, beyond its arithmetic.

``call_overhead_us`` is measured on the model's own block at width 2 in a tight loop
(:func:`ringpipe.measure.calibrate.compute.measure_call_overhead`): every array, every
Python object and the interpreter's own code stay in the first-level caches, and
NumPy serves each tiny result from its small-block cache. Inside a step none of that
holds: results of 1-64 KiB come from ``malloc``, the activations a backward reads were
written micro-batches before, and the interpreter's working set is the whole model's.
Measured on the 2-core development VM, a step's operations cost about 3 µs each where
the tight loop says 1.2-1.4 µs; with the tight-loop figure, the predictor put the
README's pipeline (``--pp 2 --microbatches 4 --hidden 128``) and the benchmark's small
plans 20-50% low.

So the per-operation cost is also measured where it is paid: the probe plan
:data:`PROBE` (one rank, two blocks of width 64 on 8 tokens; not a shape any example
uses) runs with m = 2 and m = 8 micro-batches of one sequence. The difference, per
micro-batch, is its F, I and W passes; less their arithmetic (priced with no per-call
cost: the GEMM grid, the operation bandwidths, the transcendentals) and the
interpreter's three actions (:mod:`ringpipe.measure.calibrate.probe`), divided by the
passes' operation count (:func:`ringpipe.cost.executable.numpy_ops.ops_calls`), it is
``step_call_overhead_us``, which the predictor charges per operation instead (never
below the tight-loop figure). It is one constant, measured on a plan of its own.
"""

from __future__ import annotations

from dataclasses import replace

from ringpipe.cost.executable.numpy_ops import stage_ops
from ringpipe.cost.executable.pricer import Pricer
from ringpipe.cost.hardware.calibration import Calibration
from ringpipe.cost.hardware.cluster import Link
from ringpipe.kernels.threads import ThreadPolicy
from ringpipe.measure.calibrate.links import host_cluster
from ringpipe.measure.calibrate.probe import microbatch_seconds
from ringpipe.measure.timer import Budget
from ringpipe.model.config import ModelConfig

__all__ = ["PROBE", "measure_step_call_overhead"]

PROBE = ModelConfig(layers=2, hidden=64, heads=4, seq=8, ffn=256)
#: Each plan is timed for at least this long (a step takes milliseconds).
SECONDS = 0.3


def measure_step_call_overhead(calibration: Calibration, budget: Budget) -> float:
    """Seconds per array operation inside a step (module docstring). ``calibration``:
    this machine's constants measured so far, the interpreter's per-action cost
    included, and the BLAS threads the probe runs with."""
    budget = Budget(max(budget.seconds, SECONDS), budget.max_calls)
    threads = ThreadPolicy(calibration.blas_threads, calibration.blas_threads,
                           "calibrate's own")
    arithmetic = Pricer(host_cluster(1, Link(1e9, 0.0)), replace(calibration, call_overhead=0.0),
                        "inproc", "float64")
    ops = stage_ops(PROBE, 1, PROBE.layers, True, True, 1)
    passes = (ops.forward, ops.backward_input, ops.backward_weight)
    base = sum(arithmetic.compute(o) for o in passes)
    calls = sum(len(o.gemms) + sum(c for c, _ in o.mem) for o in passes)
    per_microbatch = microbatch_seconds(PROBE, threads, budget)
    actions = 3 * (calibration.action_overhead or 0.0)
    return max((per_microbatch - actions - base) / calls, calibration.call_overhead)
