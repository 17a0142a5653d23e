"""The predictor of executable plans: a :class:`ringpipe.Plan` priced as it runs on a
calibrated machine, so that a prediction can be checked against a run
(``ringpipe verify --cluster-file``).

* :mod:`.predict`: :class:`PlanModel` and its :class:`PlanPrediction`;
* :mod:`.pricer`: operation, collective and message prices of one runtime, and the
  sizes a plan moves;
* :mod:`.numpy_ops`: the operators the NumPy model runs, with their real shapes.
"""

from ringpipe.cost.executable.predict import PlanModel, PlanPrediction

__all__ = ["PlanModel", "PlanPrediction"]
