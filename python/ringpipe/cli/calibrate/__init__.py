"""``ringpipe calibrate``: the subcommand (:mod:`.command`) and its parts."""

from ringpipe.cli.calibrate.command import register

__all__ = ["register"]
