"""ringpipe: tensor- and pipeline-parallel collectives, schedules and plans.

Optional pieces (MPI, GPU, plotting) are extras; importing ringpipe never needs them.
"""

__version__ = "0.1.0"
