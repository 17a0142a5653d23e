"""``python -m ringpipe.mpi {verify,allreduce} ...``: the name users type under mpiexec.

The ranks' program is the command line's (:mod:`ringpipe.cli.ranks.main`); this module
only runs it, so that :mod:`ringpipe.mpi` itself stays a transport.
"""

import sys

from ringpipe.cli.ranks.main import main

sys.exit(main())
