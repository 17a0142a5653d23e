"""``ringpipe plan``: the subcommand (:mod:`.command`) and its parts."""

from ringpipe.cli.plan.command import register

__all__ = ["register"]
