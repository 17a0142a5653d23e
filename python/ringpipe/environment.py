"""Whether to show Python tracebacks: ``RINGPIPE_DEBUG``, read in one place.

ringpipe's command-line tools print one line per failure (the CLI, and on MPI ranks
``rank R: <error>``); ``RINGPIPE_DEBUG`` set to a true value (anything but empty, 0,
false or no) adds the traceback. MPI ranks inherit the variable from the launcher, so
``RINGPIPE_DEBUG=1 ringpipe verify --backend mpi ...`` shows the ranks' tracebacks too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["DEBUG_ENV", "debug_enabled"]

#: The environment variable that turns tracebacks on.
DEBUG_ENV = "RINGPIPE_DEBUG"


def debug_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``RINGPIPE_DEBUG`` (in ``environ``, default ``os.environ``) is set to a
    true value."""
    value = (os.environ if environ is None else environ).get(DEBUG_ENV, "")
    return value.strip().lower() not in ("", "0", "false", "no")
