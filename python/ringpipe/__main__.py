"""``python -m ringpipe`` runs the command line."""

import sys

from ringpipe.cli import main

sys.exit(main())
