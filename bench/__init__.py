"""Benchmark of the model fetcher against common transfer tools (run: make bench, or python -m bench)."""
