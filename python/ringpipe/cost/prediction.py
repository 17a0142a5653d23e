"""The one shape every predictor of ringpipe answers in: :class:`Prediction`.

There are three predictors, one per question, and they all answer ``predict(...) ->
Prediction``:

* :class:`~ringpipe.cost.training.step_time.StepModel` prices one point of the training
  search (a :class:`~ringpipe.cost.training.prediction.Config`) on a cluster:
  :class:`~ringpipe.cost.training.prediction.StepPrediction`;
* :class:`~ringpipe.cost.executable.predict.PlanModel` prices an executable
  :class:`ringpipe.Plan` on a calibrated machine, as it runs:
  :class:`~ringpipe.cost.executable.predict.PlanPrediction`;
* :class:`~ringpipe.cost.inference.model.InferenceModel` prices a serving layout (a
  :class:`ringpipe.Mesh`) under a workload:
  :class:`~ringpipe.cost.inference.model.InferencePrediction`.

Each answer carries, whatever else it knows:

* ``total_s``: the headline time in seconds (a training step; a request's end-to-end
  latency, TTFT + (K − 1)·TPOT);
* ``breakdown_s``: the parts of that time, named (seconds);
* ``memory_bytes``: what the fullest GPU holds, by kind (bytes; ``total`` included);
* ``assumptions``: what decided the answer and is worth checking against the real job
  (sequence length, batch, dtype, the links each kind of communication crosses and
  their bandwidths, the runtime...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

__all__ = ["Prediction", "Predictor"]


@runtime_checkable
class Prediction(Protocol):
    """What a predictor answers (module docstring)."""

    @property
    def total_s(self) -> float:
        """The headline time, seconds."""

    @property
    def breakdown_s(self) -> Mapping[str, float]:
        """The parts of the time, seconds, by name."""

    @property
    def memory_bytes(self) -> Mapping[str, float]:
        """Bytes on the fullest GPU, by kind, with ``total``."""

    @property
    def assumptions(self) -> Mapping[str, object]:
        """What decided the answer (module docstring)."""


class Predictor(Protocol):
    """Anything with ``predict(...) -> Prediction`` (module docstring's table)."""

    def predict(self, *args: object) -> Prediction:
        """The prediction for what ``args`` describe."""
