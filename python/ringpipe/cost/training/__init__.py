"""ringpipe.cost.training."""
