"""Traffic simulator for load tests and acceptance runs."""
