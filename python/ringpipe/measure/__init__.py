"""ringpipe.measure."""
