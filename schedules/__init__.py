"""``ringpipe.schedules``: pipeline schedules as data (IR, generators, checks, views)."""
