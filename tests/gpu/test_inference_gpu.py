"""Generation on a real GPU (marked ``gpu``; skipped without one): the reference on CuPy
arrays and the in-process runtime with ``backend="cupy"`` against the NumPy reference.

cuBLAS sums matmuls in its own order, so logits match to rounding (1e-10 relative in
float64), not bitwise; the greedy tokens must be identical. Run on a GPU machine:
``python -m pytest tests/gpu/test_inference_gpu.py -m gpu``.
"""

import numpy as np
import pytest
from test_gpu_device import _REASON, NGPUS, cp

from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig, generate, init_params
from ringpipe.plan.inference import InferencePlan
from ringpipe.runtime.inference import run_inprocess_inference

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(NGPUS == 0, reason=_REASON or "no GPU")]

CFG = ModelConfig(layers=4, hidden=32, heads=4, kv_heads=2, vocab=50)


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_reference_on_cupy_matches_numpy():
    params = init_params(CFG, 0)
    prompts = np.random.default_rng(1).integers(0, CFG.vocab, (3, 6))
    host = generate(CFG, params, prompts, 4)
    dev = generate(CFG, {k: cp.asarray(v) for k, v in params.items()}, cp.asarray(prompts), 4)
    assert np.array_equal(dev.tokens, host.tokens) and _rel(dev.logits, host.logits) < 1e-10


def test_runtime_on_cupy_matches_the_reference():
    params = init_params(CFG, 2)
    prompts = np.random.default_rng(3).integers(0, CFG.vocab, (4, 5))
    ref = generate(CFG, params, prompts, 3)
    plan = InferencePlan(CFG, Mesh(pp=2, tp=2), 4, 5, 3)
    res = run_inprocess_inference(plan, params, prompts, "cupy")
    assert np.array_equal(res.tokens, ref.tokens) and _rel(res.logits, ref.logits) < 1e-10
