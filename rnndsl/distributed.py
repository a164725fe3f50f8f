"""Data-parallel training over MPI: `rank()`, `size()` (the code: rnndsl/train/distributed.py).

Under `mpiexec -n N`, Model.fit and `rnndsl run` split each global batch across the N ranks
and sum the gradients with one Allreduce per step; `fit(..., distributed=False)` opts out."""

from .train.distributed import abort, launched_size, rank, size, world  # noqa: F401

__all__ = ["rank", "size", "world", "abort", "launched_size"]
