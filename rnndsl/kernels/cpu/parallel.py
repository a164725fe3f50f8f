"""Batch-parallel execution of the recurrent kernels on the machine's cores.

Rows of a batch never interact inside a recurrent layer, so the time loop
splits cleanly by batch: each core runs every step for its own rows, with
no synchronisation per step (a threaded BLAS would synchronise on every
per-step product, and at these sizes that costs more than it saves).

The built-in cells' kernels each have a compiled driver (``*_split``, a prange
over row ranges) that runs the parts in numba's thread pool: ~2 us to start
(``run_rows``). The generated custom-cell kernels and the large products use
``run_split``: plain Python threads over nogil code, 50-80 us a hand-off, so
only worth it for large calls. Small problems stay on the calling thread.

numba picks its threading layer (tbb, omp or workqueue) by what is installed;
with GNU OpenMP a process that forks after a parallel region must not use
rnndsl in the child (start workers with the "spawn" method).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

WORKERS = max(1, int(os.environ.get("RNNDSL_NUM_THREADS", os.cpu_count() or 1)))
# multiply-adds of a whole call below which splitting does not pay
MIN_SPLIT_WORK = int(os.environ.get("RNNDSL_MIN_SPLIT_WORK", 2_000_000))
MIN_ROWS = 4

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=max(WORKERS - 1, 1), thread_name_prefix="rnndsl")
    return _pool


def chunks(rows: int, work: int) -> list[tuple[int, int]]:
    """Split rows 0..rows into contiguous ranges, one per worker, when the work is worth it."""
    n = min(WORKERS, rows // MIN_ROWS) if work >= MIN_SPLIT_WORK else 1
    n = max(n, 1)
    edges = [rows * k // n for k in range(n + 1)]
    return [(edges[k], edges[k + 1]) for k in range(n)]


def run_rows(kernel, split, args: tuple, rows: int, work: int) -> None:
    """kernel(*args, b0, b1) over rows 0..rows: on this thread when one part is enough, else
    split(*args, rows, parts), the kernel's compiled driver that runs the parts at once in
    numba's thread pool (a prange over row ranges: ~2 us to start, where handing a part to
    a Python thread and waiting for it costs 50-80 us)."""
    n = len(chunks(rows, work))
    if n == 1:
        kernel(*args, 0, rows)
    else:
        split(*args, rows, n)


def run_split(fn, rows: int, work: int) -> None:
    """Call fn(b0, b1) for each chunk of rows, the first on this thread, the rest in the pool."""
    parts = chunks(rows, work)
    if len(parts) == 1:
        fn(0, rows)
        return
    futures = [_executor().submit(fn, b0, b1) for b0, b1 in parts[1:]]
    fn(*parts[0])
    for f in futures:
        f.result()


def matmul(a, b, out=None):
    """a @ b with a's rows split across the cores (BLAS itself runs one thread)."""
    import numpy as np

    from . import buffers

    rows = a.shape[0]
    if out is None:
        out = buffers.empty((rows, b.shape[1]), np.result_type(a, b))
    run_split(lambda r0, r1: np.matmul(a[r0:r1], b, out=out[r0:r1]), rows, rows * a.shape[1] * b.shape[1] // 8)
    return out
