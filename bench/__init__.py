"""Benchmarks: each prints its figures next to baselines measured in the same run."""
