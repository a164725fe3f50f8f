"""Benchmarks of rnndsl against PyTorch and Keras: `python bench/run.py --help`."""
