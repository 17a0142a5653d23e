"""ringpipe.cli.ranks."""
