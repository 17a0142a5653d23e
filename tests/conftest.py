"""Shared test settings: hypothesis profiles sized for a 2-core CI machine, and the shared
helpers (``tests/helpers``: emulated devices, MPI jobs) importable by name."""

import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent / "helpers"))

settings.register_profile(
    "ringpipe",
    deadline=None,  # the first call of a dtype may JIT-compile (or load the cache)
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("ringpipe")
