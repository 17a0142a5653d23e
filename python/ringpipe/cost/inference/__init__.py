"""ringpipe.cost.inference.model."""
