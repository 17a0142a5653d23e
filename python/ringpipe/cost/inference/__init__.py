"""The inference cost model: time to first token, time per output token and memory of a
TP × PP (× DP) serving layout, and the search over layouts.

* :mod:`.workload`: what is served (:class:`Workload`) and its KV cache;
* :mod:`.model`: :class:`InferenceModel` (``predict(mesh, workload) ->
  InferencePrediction``), its two calibrated constants (:class:`InferenceCalibration`);
* :mod:`.search`: rank layouts for latency or throughput at a static batch, and explain
  the winner;
* serving under traffic, with the runtime's continuous-batching scheduler
  (:mod:`ringpipe.runtime.batching`): :mod:`.iteration` prices one iteration,
  :mod:`.traffic` makes arrivals (Poisson, closed loop, trace), :mod:`.serving` simulates a
  layout and reports latency percentiles, :mod:`.goodput` ranks layouts by goodput,
  :mod:`.disagg` runs prefill and decode on separate pools.
"""

from ringpipe.cost.inference.model import InferenceCalibration, InferenceModel, InferencePrediction
from ringpipe.cost.inference.workload import Workload, kv_cache_bytes

__all__ = ["InferenceCalibration", "InferenceModel", "InferencePrediction", "Workload",
           "kv_cache_bytes"]
