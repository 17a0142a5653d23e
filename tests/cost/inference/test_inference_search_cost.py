"""``plan --inference --objective throughput`` on a large cluster prices thousands of
(layout, batch) points without building and validating thousands of schedules: the
prefill's time to first token has a closed form (equal to simulating its schedule, for
any costs), and the decode schedule is built once per shape."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ringpipe.cost.inference.model as inference_model
from ringpipe.cli import main
from ringpipe.schedules import schedule as actions
from ringpipe.schedules.generators.decode import inference_timing, prefill, prefill_ttft

costs = st.floats(min_value=0.0, max_value=1e3, allow_nan=False, allow_infinity=False)


@given(st.lists(costs, min_size=1, max_size=6), costs, st.integers(1, 40))
def test_the_prefill_closed_form_is_the_simulated_schedule(stage_costs, hop, groups):
    simulated = inference_timing(prefill(len(stage_costs), groups), stage_costs, stage_costs,
                                 hop).ttft
    assert prefill_ttft(stage_costs, hop, groups) == pytest.approx(simulated, rel=1e-12,
                                                                   abs=1e-12)


def test_the_prefill_closed_form_refuses_bad_costs():
    with pytest.raises(ValueError, match="num_groups"):
        prefill_ttft([1.0], 0.0, 0)
    with pytest.raises(ValueError, match=r"prefill_cost\[1\]"):
        prefill_ttft([1.0, -1.0], 0.0, 2)
    with pytest.raises(TypeError, match="one cost per pipeline rank"):
        prefill_ttft(1.0, 0.0, 2)  # type: ignore[arg-type]


def test_a_large_throughput_search_builds_each_schedule_shape_once(monkeypatch, capsys):
    built: list[tuple[int, int]] = []
    real = actions.Schedule.__init__

    def counting(self, *args, **kwargs):
        real(self, *args, **kwargs)
        built.append((self.num_ranks, self.num_microbatches))

    monkeypatch.setattr(actions.Schedule, "__init__", counting)
    argv = ["plan", "--inference", "--model", "llama2-70b", "--cluster", "pcie-a100",
            "--nodes", "64", "--prompt-len", "17", "--output-len", "5", "--batch", "16",
            "--objective", "throughput", "--json", "--top", "1"]
    assert main(argv) == 0
    capsys.readouterr()
    # before: one prefill and one decode schedule (built and validated action by action,
    # 8.8 M check_int calls) per priced point, thousands of them
    assert len(built) == len(set(built)) < 200, len(built)


def test_the_model_keeps_its_decode_schedules(monkeypatch):
    calls = []
    real = inference_model.decode

    def counting(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(inference_model, "decode", counting)
    from ringpipe.cost.hardware.cluster import cluster_preset
    from ringpipe.cost.inference.workload import Workload
    from ringpipe.mesh import Mesh
    from ringpipe.model.presets import model_preset

    im = inference_model.InferenceModel(model_preset("llama2-7b"), cluster_preset("dgx-a100"))
    rng = random.Random(0)
    for _ in range(20):
        im.predict(Mesh(pp=4, tp=2), Workload(rng.randint(16, 512), 8, 4, "bf16"))
    assert len(calls) == 1
