"""Schedule synthesis: a schedule built for given per-stage costs and a memory cap.

* :mod:`.kernel`: the list scheduler (one Numba loop);
* :mod:`.search`: its knobs searched, locally improved and compared with the fixed
  schedules (:func:`synthesize`, :func:`synthesis_report`).
"""

from ringpipe.schedules.synthesis.search import (
    FIXED_BY_CHUNKS,
    SynthesisReport,
    synthesis_report,
    synthesize,
)

__all__ = ["FIXED_BY_CHUNKS", "SynthesisReport", "synthesis_report", "synthesize"]
