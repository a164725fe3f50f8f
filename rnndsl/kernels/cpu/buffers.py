"""Arrays reused from one train step to the next.

A train step allocates the same large arrays every time (the activations saved for
backward, the pre-activation gradients, the products' outputs) and drops them at its
end. Fresh large blocks come from the system as untouched pages, so every step paid
its page faults again (a large share of a small model's step: bench/README.md). Inside
``reusing(pool)`` (the train step), ``empty`` hands out the arrays the previous step
released, by shape and dtype; ``reusing`` releases them all when the step is over.
Nothing allocated here may outlive the step: only the train step opens a scope, and
what it keeps (states, statistics, weights) is copied or computed by NumPy.
Outside a scope ``empty`` is np.empty.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from contextlib import contextmanager

import numpy as np


class Pool:
    """Free arrays by (shape, dtype); what one step used is what the next step finds."""

    def __init__(self):
        self.free: dict = defaultdict(list)
        self.used: list = []

    def empty(self, shape, dtype) -> np.ndarray:
        key = (tuple(shape), dtype if isinstance(dtype, np.dtype) else np.dtype(dtype))
        stack = self.free.get(key)
        a = stack.pop() if stack else np.empty(key[0], key[1])
        self.used.append(a)
        return a

    def release(self) -> None:
        """Everything this step used becomes free; what it did not use is dropped (a batch of
        another shape must not keep the old one's arrays alive)."""
        self.free = defaultdict(list)
        for a in self.used:
            self.free[(a.shape, a.dtype)].append(a)
        self.used = []


# the pool of the train step running on this thread: a step's allocations all happen on
# the thread that runs it (the kernels' worker threads allocate nothing through here), and
# two models trained on two threads must not hand each other's arrays out
class _Scope(threading.local):
    # a class default, so that reading it on a thread that never set one raises nothing
    # (getattr with a default catches an AttributeError: a microsecond, on every array)
    pool = None


_scope = _Scope()


def empty(shape, dtype) -> np.ndarray:
    """np.empty, from the current step's pool when a train step is running on this thread."""
    pool = _scope.pool
    return np.empty(shape, dtype) if pool is None else pool.empty(shape, dtype)


def zeros(shape, dtype) -> np.ndarray:
    a = empty(shape, dtype)
    a.fill(0)
    return a


@contextmanager
def reusing(pool: Pool):
    """Allocations through empty/zeros come from pool until the block ends; then the pool
    takes them all back for the next step."""
    outer = _scope.pool
    _scope.pool = pool
    try:
        yield pool
    finally:
        _scope.pool = outer
        pool.release()


def read_only(a: np.ndarray) -> np.ndarray:
    """A view of `a` that cannot be written. A kernel gets the arrays it only reads (dout) this
    way every time: numba compiles a kernel once per argument type, and read-only is part of
    the type, so a mix of read-only and writable calls compiled every kernel twice."""
    if not a.flags.writeable:
        return a
    view = a.view()
    view.flags.writeable = False
    return view
