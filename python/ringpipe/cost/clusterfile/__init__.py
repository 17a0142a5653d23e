"""ringpipe.cost.clusterfile."""
