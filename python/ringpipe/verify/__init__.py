"""Prove a plan computes what one device computes, before GPU hours are spent.

* :mod:`.training`: :func:`verify_plan`, a training step against the single-device
  reference (loss, outputs, every gradient);
* :mod:`.inference`: :func:`verify_inference`, greedy generation against the reference
  (tokens equal, logits close);
* :mod:`.compare`: normwise errors and the bitwise comparison of two runs.

The measured against the predicted step time of a plan (``ringpipe verify
--cluster-file``) is a measurement: :mod:`ringpipe.measure.step_time`.
"""

from ringpipe.verify.compare import TOLERANCES, RunDiff, compare_runs, relative_error
from ringpipe.verify.inference import InferenceReport, verify_inference
from ringpipe.verify.training import (
    VerifyReport,
    compare_to_reference,
    format_report,
    random_batch,
    verify_plan,
)

__all__ = ["TOLERANCES", "InferenceReport", "RunDiff", "VerifyReport", "compare_runs",
           "compare_to_reference", "format_report", "random_batch", "relative_error",
           "verify_inference", "verify_plan"]
