"""The interpreter's cost per action, from two tiny probe plans run in-process.

A pipeline action costs more than its operators: the interpreter dispatches it, routes
its tensors, updates caches and counters (:mod:`ringpipe.runtime.interpreter`,
:mod:`ringpipe.runtime.training`). That cost does not depend on the model's size, so it
is measured on the smallest model there is (one block of width 2 on one token, one
rank): a plan with m = 2 and one with m = 8 micro-batches. Their CPU-time difference,
less what their operators cost (priced by :func:`ringpipe.cost.executable.predict.Pricer` with
the constants just measured), divided by the difference in F/I/W actions (3 per
micro-batch), is the cost of one action. Taking the difference cancels what a step
costs once (sharding the parameters, assembling the result).
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from ringpipe.cost.executable.numpy_ops import stage_ops
from ringpipe.cost.executable.pricer import Pricer
from ringpipe.cost.hardware.calibration import Calibration
from ringpipe.cost.hardware.cluster import Link
from ringpipe.cost.hardware.gemm_curve import GemmCurve
from ringpipe.cost.hardware.gemm_table import GemmTable
from ringpipe.kernels.threads import ThreadPolicy
from ringpipe.measure.calibrate.links import host_cluster
from ringpipe.measure.timer import Budget, cpu_time
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.model.params import init_params
from ringpipe.plan.training import Plan
from ringpipe.verify.training import random_batch

PROBE = ModelConfig(layers=1, hidden=2, heads=1, seq=1, ffn=2)
COUNTS = (2, 8)


def measure_action_overhead(curve: GemmCurve, call_overhead: float, bandwidth: float,
                            op_bandwidth: tuple[tuple[float, float], ...],
                            transcendental: float, budget: Budget,
                            table: GemmTable | None = None, blas_threads: int = 1) -> float:
    """Seconds of interpreter work per F, I or W action (module docstring); the
    operators are priced as the predictor will price them (with the measured float64
    GEMM grid ``table`` when there is one), and the probe plans run with the
    ``blas_threads`` the rest was measured with."""
    threads = ThreadPolicy(blas_threads, blas_threads, "calibrate's own")
    grids = MappingProxyType({} if table is None else {"float64": table})
    cal = Calibration(cores=1, blas_threads=1, call_overhead=call_overhead,
                      memory_bandwidth=bandwidth, gemm=MappingProxyType({"float64": curve}),
                      op_bandwidth=op_bandwidth, transcendental=transcendental,
                      gemm_tables=grids)
    pricer = Pricer(host_cluster(1, Link(1e9, 0.0)), cal, "inproc", "float64")
    ops = stage_ops(PROBE, 1, 1, True, True, 1)
    per_mb = sum(pricer.compute(o) for o in (ops.forward, ops.backward_input,
                                              ops.backward_weight))
    extra = microbatch_seconds(PROBE, threads, budget) - per_mb
    return float(np.maximum(extra, 0.0) / 3)


def microbatch_seconds(config: ModelConfig, threads: ThreadPolicy, budget: Budget) -> float:
    """CPU seconds one more micro-batch of one sequence adds to a one-rank 1F1B step of
    ``config``: the difference between plans of :data:`COUNTS` micro-batches, over their
    difference (what a step costs once cancels)."""
    params = init_params(config, 0)
    times = []
    for m in COUNTS:
        plan = Plan(config, Mesh(dp=1, pp=1, tp=1), schedule="1f1b", microbatches=m)
        batch = random_batch(config, m, 1)
        times.append(cpu_time(lambda plan=plan, batch=batch: plan.run(
            params, batch, backend="numpy", threads=threads), budget))
    return (times[1] - times[0]) / (COUNTS[1] - COUNTS[0])
