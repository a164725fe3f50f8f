"""The application behind the command line (cli.py): training a spec on its data, predicting
with a checkpoint, compiling a spec's kernels ahead of time. Sits on the facade (rnndsl)."""
