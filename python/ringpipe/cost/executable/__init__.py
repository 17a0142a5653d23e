"""ringpipe.cost.executable.predict."""
