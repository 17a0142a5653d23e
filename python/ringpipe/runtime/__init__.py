"""Runtimes that execute a :class:`ringpipe.Plan`: in-process ranks (``inproc``)."""
