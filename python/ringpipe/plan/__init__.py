"""ringpipe.plan.training."""
