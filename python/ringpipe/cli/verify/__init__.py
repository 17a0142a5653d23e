"""``ringpipe verify``: the subcommand (:mod:`.command`) and its parts."""

from ringpipe.cli.verify.command import register

__all__ = ["register"]
