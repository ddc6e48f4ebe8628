"""The benchmark harness behind `bench/run.py` (see bench/RESULTS.md for what it measures)."""
