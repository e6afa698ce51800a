"""Benchmarks (not tests): `python -m bench` writes bench/RESULTS.md and bench/results.json."""
