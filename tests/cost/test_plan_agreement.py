"""The planner prices the Plan that runs (issue 11 item 4): the same mesh, the same layer
split (``ringpipe.plan.layout.split_layers``), the same chunks per rank
(``ringpipe.schedules.resolve_chunks``) and the same schedule, so the cost model's peak
in-flight micro-batches per pipeline rank equal the schedule simulator's and the ones the
runtime measures."""

import pytest

from ringpipe.cost.hardware.cluster import GB, GIB, Cluster, Link
from ringpipe.cost.training.prediction import Config
from ringpipe.cost.training.spec import TrainingSpec
from ringpipe.cost.training.step_time import StepModel
from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig, init_params
from ringpipe.model.presets import gpt_like
from ringpipe.plan.training import Plan
from ringpipe.schedules import simulate
from ringpipe.verify.training import random_batch


def one_node(world: int) -> Cluster:
    return Cluster("box", 1, world, 100e12, 80 * GIB, 2000 * GB, Link(300 * GB, 2e-6),
                   Link(25 * GB, 6e-6))


@pytest.mark.parametrize("schedule, chunks, layers, mesh, microbatches", [
    ("1f1b", None, 5, Mesh(pp=2), 4),                  # uneven: stages of 3 and 2 layers
    ("gpipe", None, 4, Mesh(pp=2), 3),
    ("interleaved-1f1b", 2, 5, Mesh(pp=2), 4),         # 4 stages over 5 layers
    ("zb-h1", None, 7, Mesh(pp=3), 6),                 # uneven: 3, 2, 2
    ("zb-v", None, 5, Mesh(pp=2), 4),                  # V placement, uneven
    ("1f1b", None, 4, Mesh(dp=2, pp=2, tp=2), 4),      # every axis at once
])
def test_cost_model_peaks_equal_simulator_and_runtime(schedule, chunks, layers, mesh,
                                                     microbatches):
    cfg = ModelConfig(layers=layers, hidden=8, heads=2, seq=3, vocab=7)
    plan = Plan(cfg, mesh, schedule, microbatches, chunks=chunks)
    batch_size = mesh.dp * microbatches  # micro-batches of one sequence
    measured = plan.run(init_params(cfg, 0), random_batch(cfg, batch_size, 1)).counters
    runtime = [c.peak_activations for c in measured if c.dp == 0 and c.tp == 0]
    simulated = list(simulate(plan.schedule).peak_activations)

    spec = gpt_like("tiny", layers, 8, 2, 3, 7)
    step = StepModel(spec, TrainingSpec(batch_size, 1), one_node(mesh.world))
    config = Config(mesh, schedule, 1, chunks, "none")
    layout = step.layout(config)
    assert config.chunks == plan.chunks
    assert layout.layers == plan.layers_per_stage
    assert layout.placement == plan.schedule.placement
    priced = list(step.peak_in_flight(config, layout))
    assert priced == simulated == runtime
    assert list(step.predict(config).peak_in_flight) == runtime


def test_the_cost_model_has_no_second_split_or_chunk_resolver():
    import ringpipe.cost.training.pipeline.simulator as pipeline
    import ringpipe.cost.training.step_time as step_time

    for module in (pipeline, step_time):
        assert not hasattr(module, "stage_layers") and not hasattr(module, "chunks_for")
        assert not hasattr(module, "_mesh_rank")
    with pytest.raises(TypeError, match="Config.mesh must be a ringpipe.mesh.Mesh"):
        Config((1, 2, 1))
