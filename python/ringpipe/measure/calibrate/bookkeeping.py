"""The step's bookkeeping copies: what a training step costs beyond its operators and
its interpreter, per parameter tensor and per byte.

Once a step, every rank copies its parameter shards in
(:func:`ringpipe.runtime.training.stage_shards`), packs its gradients into one flat
bucket (:meth:`~ringpipe.runtime.training.TrainingWorker.gradient_bucket`), and the
result is assembled from every rank's gradients
(:func:`ringpipe.model.sharding.gather_grads`): passes over every parameter tensor, each
paying Python work per tensor and a copy of its bytes
(:func:`ringpipe.cost.executable.pricer.rank_copies` and
:func:`~ringpipe.cost.executable.pricer.assemble_time` price them).

* **Per tensor** (``tensor_overhead_us``): ``stage_shards`` alone, timed for one stage
  of two models with the same 45 tensors and widths :data:`WIDTHS` (1.7 and 26 MB of
  float64 parameters); the intercept of the line through the two points, over the
  tensor count.
* **Per byte** (``copy_bandwidth_gbs``): these copies run far slower inside a step than
  the same copies timed alone. Profiled in the README's pipeline (``--pp 2
  --microbatches 4 --hidden 128``, cProfile, 10 steps), the three routines took 8–10 ms
  of a 35–43 ms step: 4–7 GB/s moved, where ``stage_shards`` alone moves 14–18 GB/s and
  a bare ``ndarray.copy`` 60–90 (the step's gradients and parameters sit in a heap the
  step has just churned through, not in fresh pages). So the bandwidth is measured in
  a step: the probe plan :data:`STEP_PROBE` (one rank, two blocks of width 192, two
  micro-batches: not a shape any example uses) runs under the runtimes' heap policy,
  its CPU time less everything else the predictor charges for it (operators, actions,
  per-tensor work, all with the constants just measured) is taken as the time of its
  copies, and the bytes those copies move (:func:`copied_bytes`) over that time is the
  bandwidth, held within [:data:`MIN_BANDWIDTH`, :data:`MAX_BANDWIDTH`].

The per-byte figure is therefore partly a residual: whatever the operator model misses
on the probe lands in it. It is one constant, measured on a plan of its own.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ringpipe.cost.executable.predict import PlanModel
from ringpipe.cost.hardware.calibration import Calibration
from ringpipe.cost.hardware.cluster import Link
from ringpipe.kernels.threads import ThreadPolicy
from ringpipe.measure.calibrate.links import host_cluster
from ringpipe.measure.timer import Budget, cpu_time
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.model.params import init_params
from ringpipe.plan.training import Plan
from ringpipe.runtime.training import stage_shards
from ringpipe.verify.training import random_batch

__all__ = ["STEP_PROBE", "copied_bytes", "measure_bookkeeping"]

WIDTHS = (64, 256)
LAYERS = 4
#: Each point is timed for at least this long (the larger one takes milliseconds).
SECONDS = 0.3
STEP_PROBE = ModelConfig(layers=2, hidden=192, heads=4, seq=8, ffn=768)
STEP_MICROBATCHES = 2
STEP_BATCH = 4
#: Bounds on the measured bandwidth, bytes/s (a residual near zero or negative would
#: otherwise give an absurd one).
MIN_BANDWIDTH, MAX_BANDWIDTH = 0.5e9, 200e9
#: What a bandwidth "not charged" is set to while the rest of the probe is predicted.
_FREE = 1e18


def copied_bytes(plan: Plan) -> float:
    """Bytes the priced bookkeeping copies of one in-process step of ``plan`` move
    (read + written) when it has one rank: the shards in, the bucket, and the two
    copies of the assembly, each of every parameter."""
    params = plan.config.num_params() * np.dtype(plan.config.np_dtype).itemsize
    return 2.0 * 4 * params


def measure_bookkeeping(calibration: Calibration, budget: Budget) -> tuple[float, float]:
    """(seconds per parameter tensor, bytes moved per second) of a step's bookkeeping
    (module docstring). ``calibration``: this machine's constants measured so far
    (GEMMs, operations, call and action overheads) and the BLAS threads they were
    measured with, which the probe step runs with too."""
    budget = Budget(max(budget.seconds, SECONDS), budget.max_calls)
    per_tensor = _per_tensor(budget)
    plan = Plan(STEP_PROBE, Mesh(dp=1, pp=1, tp=1), schedule="1f1b",
                microbatches=STEP_MICROBATCHES)
    params = init_params(STEP_PROBE, 0)
    batch = random_batch(STEP_PROBE, STEP_BATCH, 1)
    threads = ThreadPolicy(calibration.blas_threads, calibration.blas_threads,
                           "calibrate's own")
    step = cpu_time(lambda: plan.run(params, batch, backend="numpy", threads=threads), budget)
    cal = replace(calibration, tensor_overhead=per_tensor, copy_bandwidth=_FREE)
    rest = PlanModel(host_cluster(1, Link(1e9, 0.0)), cal).predict(
        plan, STEP_BATCH, "inproc", cpu_share=1.0).step_time
    residual = step - rest
    bandwidth = copied_bytes(plan) / residual if residual > 0 else MAX_BANDWIDTH
    return per_tensor, float(min(max(bandwidth, MIN_BANDWIDTH), MAX_BANDWIDTH))


def _per_tensor(budget: Budget) -> float:
    """Seconds of ``stage_shards``' Python work per tensor (module docstring)."""
    points = []
    for width in WIDTHS:
        cfg = ModelConfig(layers=LAYERS, hidden=width, heads=4, seq=1, ffn=4 * width)
        params = init_params(cfg, 0)
        plan = Plan(cfg, Mesh(dp=1, pp=1, tp=1), schedule="1f1b", microbatches=1)
        nbytes = float(sum(v.nbytes for v in params.values()))
        seconds = cpu_time(lambda plan=plan, params=params: stage_shards(
            plan, params, 0, [0], np.asarray), budget)
        points.append((nbytes, seconds, len(params)))
    (b0, t0, n), (b1, t1, _) = points
    per_byte = max((t1 - t0) / (b1 - b0), 0.0)
    return max(t0 - per_byte * b0, 0.0) / n
