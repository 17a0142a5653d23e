"""One predictor interface: every predictor answers predict(...) -> Prediction."""

import numpy as np
import pytest

from ringpipe.cost import Config, Prediction, StepModel, TrainingSpec, cluster_preset
from ringpipe.cost.clusterfile.load import read_cluster
from ringpipe.cost.executable.predict import PlanModel
from ringpipe.cost.inference.model import InferenceModel
from ringpipe.cost.inference.workload import Workload
from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig, model_preset
from ringpipe.plan import Plan


def _calibrated():
    cluster = cluster_preset("dgx-a100").to_dict()
    cluster["measured"] = {
        "host": "test", "cores": 2, "blas_threads": 1, "backend": "numba",
        "call_overhead_us": 2.0, "memory_bandwidth_gbs": 10.0,
        "gemm": {"float64": {"peak_gflops": 20.0, "m0": 8.0, "n0": 8.0, "k0": 8.0}},
        "p2p": {"inproc": {"latency_us": 5.0, "bandwidth_gbs": 5.0}},
        "allreduce": [], "cpu_share": {"inproc": 1.0}}
    return cluster


def test_the_three_predictors_answer_one_shape():
    step = StepModel(model_preset("llama2-7b"), TrainingSpec(64),
                     cluster_preset("dgx-a100")).predict(Config(Mesh(dp=2, pp=2, tp=2)))
    infer = InferenceModel(model_preset("llama2-7b"), cluster_preset("dgx-a100")).predict(
        Mesh(tp=2, pp=2), Workload(128, 16, 4))
    answers = [step, infer]
    cluster, cal = read_cluster(_calibrated()).calibrated()
    plan = Plan(ModelConfig(layers=4, hidden=16), Mesh(pp=2, tp=2), microbatches=2)
    answers.append(PlanModel(cluster, cal).predict(plan, 4, "inproc"))
    for answer in answers:
        assert isinstance(answer, Prediction), type(answer).__name__
        assert answer.total_s > 0 and np.isfinite(answer.total_s)
        assert answer.breakdown_s and all(v >= 0 for v in answer.breakdown_s.values())
        assert answer.memory_bytes["total"] > 0
        assert answer.assumptions
    # the parts add up where they are a partition of the total
    assert sum(step.parts().values()) == pytest.approx(step.total_s)
    assert infer.total_s == pytest.approx(infer.ttft_s + 15 * infer.tpot_s)
    assert step.assumptions["tp_link"] == "intra-node" and step.assumptions["seq"] == 4096
    assert infer.assumptions["prompt_len"] == 128
    assert answers[2].assumptions["runtime"] == "inproc"
