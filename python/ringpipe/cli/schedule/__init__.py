"""``ringpipe schedule``: the subcommand (:mod:`.command`) and its parts."""

from ringpipe.cli.schedule.command import register

__all__ = ["register"]
