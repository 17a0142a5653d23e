"""ringpipe.cost.hardware."""
