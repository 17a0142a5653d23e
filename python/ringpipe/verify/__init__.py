"""ringpipe.verify.training."""
