"""ringpipe.cost.published.training_runs."""
