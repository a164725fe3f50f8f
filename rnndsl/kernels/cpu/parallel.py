"""Batch-parallel execution of the recurrent kernels on the machine's cores.

Rows of a batch never interact inside a recurrent layer, so the time loop
splits cleanly by batch: each core runs every step for its own rows, with
no synchronisation per step (a threaded BLAS would synchronise on every
per-step product, and at these sizes that costs more than it saves). The
kernels are compiled with nogil=True, so plain Python threads run them in
parallel. Small problems stay on the calling thread: a hand-off costs tens
of microseconds.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

WORKERS = max(1, int(os.environ.get("RNNDSL_NUM_THREADS", os.cpu_count() or 1)))
# multiply-adds of a whole call below which splitting does not pay
MIN_SPLIT_WORK = int(os.environ.get("RNNDSL_MIN_SPLIT_WORK", 2_000_000))
MIN_ROWS = 4

_pool: ThreadPoolExecutor | None = None
_local = threading.local()     # .serial: this thread is one of several concurrent tasks


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=max(WORKERS - 1, 1), thread_name_prefix="rnndsl")
    return _pool


def chunks(rows: int, work: int) -> list[tuple[int, int]]:
    """Split rows 0..rows into contiguous ranges, one per worker, when the work is worth it."""
    n = min(WORKERS, rows // MIN_ROWS) if work >= MIN_SPLIT_WORK else 1
    if getattr(_local, "serial", False):
        n = 1
    n = max(n, 1)
    edges = [rows * k // n for k in range(n + 1)]
    return [(edges[k], edges[k + 1]) for k in range(n)]


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


def _serially(fn):
    _local.serial = True
    try:
        return fn()
    finally:
        _local.serial = False


def run_both(f, g):
    """(f(), g()), run at the same time on two cores when there are two: two independent
    tasks (the directions of a bidirectional layer) each on one core, instead of each
    split by rows across the cores in turn. Inside them run_split stays on its thread
    (which also keeps the one-thread pool from waiting on itself)."""
    if WORKERS < 2 or getattr(_local, "serial", False):
        return f(), g()
    later = _executor().submit(_serially, g)
    try:
        first = _serially(f)
    finally:
        second = later.result()
    return first, second


def matmul(a, b, out=None):
    """a @ b with a's rows split across the cores (BLAS itself runs one thread)."""
    import numpy as np

    from . import buffers

    rows = a.shape[0]
    if out is None:
        out = buffers.empty((rows, b.shape[1]), np.result_type(a, b))
    run_split(lambda r0, r1: np.matmul(a[r0:r1], b, out=out[r0:r1]), rows, rows * a.shape[1] * b.shape[1] // 8)
    return out
