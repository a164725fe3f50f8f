"""Arrays reused from one train step to the next.

A train step allocates the same large arrays every time (the activations saved for
backward, the pre-activation gradients, the products' outputs) and drops them at its
end. Fresh large blocks come from the system as untouched pages, so every step paid
its page faults again (a large share of a small model's step: bench/README.md). Inside
``reusing(pool)`` (the train step), ``empty`` hands out arrays the pool holds whose use
is over: the previous step's, and, within the step, those nothing refers to any more
(see Pool); ``reusing`` ends the step. Nothing allocated here may outlive the step: only
the train step opens a scope, and what it keeps (states, statistics, weights) is copied
or computed by NumPy (an array still referred to is never handed out again, so one that
did outlive it would only cost memory). Outside a scope ``empty`` is np.empty.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

import numpy as np


def _holders(held: list, i: int) -> int:
    """The references to held[i], as sys.getrefcount counts them when nothing but this call
    has the array in hand (no local name: a name is a reference, and how an interpreter
    counts the ones on its stack has changed between versions)."""
    return sys.getrefcount(held[i])


# what _holders counts for an array that only the pool's list holds (measured, not assumed)
_POOL_REFS = _holders([np.empty(0)], 0)
# bytes from which a request that no spent array of its own shape serves takes the front of
# a larger spent one (smaller blocks come from glibc's heap, freed chunks and all)
MIN_FIT_BYTES = 1 << 16


class Pool:
    """The arrays a train step uses, kept for the next step.

    A request gets an array the pool holds that nothing else holds any more (no layer's
    output, saved value or gradient, no view of it: its use is over): one of its shape, or,
    for a request of MIN_FIT_BYTES or more, the front of the smallest larger one of its dtype
    (a view, which holds that array while it lives); else a new one. So a step's footprint is
    what is alive at once (the backward's gradients in the forward's spent activations: the
    executor drops a layer's saved values once its backward has run), not all it asks for.
    Each step notes which held array served each request, and the next step, asking the same
    things in the same order, gets the same answers (each checked to be spent): the arrays
    stay the same from step to step, none made anew."""

    def __init__(self):
        self.held: list = []          # the arrays the pool holds
        self.plan: list = []          # the last step's answers: (key, index in held) per request
        self.answers: list = []       # this step's

    def empty(self, shape, dtype) -> np.ndarray:
        key = (tuple(shape), dtype if isinstance(dtype, np.dtype) else np.dtype(dtype))
        k = len(self.answers)
        if k < len(self.plan) and self.plan[k][0] == key and _holders(self.held, self.plan[k][1]) <= _POOL_REFS:
            i = self.plan[k][1]
        else:
            i = self._spent(key)
            if i < 0:
                i = len(self.held)
                self.held.append(np.empty(key[0], key[1]))
        self.answers.append((key, i))
        a = self.held[i]
        return a if a.shape == key[0] and a.dtype == key[1] else _front(a, key)

    def _spent(self, key) -> int:
        """The index of a held array whose use is over to serve key: one of its shape, else (at
        MIN_FIT_BYTES or more) the smallest larger one of its dtype; -1 if none."""
        shape, dtype = key
        n = int(np.prod(shape, dtype=np.int64))
        fit = n * dtype.itemsize >= MIN_FIT_BYTES
        best, size = -1, 0
        held = self.held
        for i in range(len(held)):
            a = held[i]
            same, usable, a_size = a.shape == shape, a.dtype == dtype and a.size >= n, a.size
            a = None                                    # (a name would count as a holder)
            if not usable or (best >= 0 and a_size >= size) or not (fit or same):
                continue
            if _holders(held, i) <= _POOL_REFS:
                if same:
                    return i
                best, size = i, a_size
        return best

    def clear(self) -> None:
        """Let every held array go (a finished fit: the memory of a train step, returned)."""
        self.held, self.plan, self.answers = [], [], []

    def release(self) -> None:
        """The step is over: its answers become the plan of the next; the held arrays it did not
        use are dropped (a batch of another shape must not keep the old one's arrays alive)."""
        kept = sorted({i for _, i in self.answers})
        where = {i: j for j, i in enumerate(kept)}
        self.held = [self.held[i] for i in kept]
        self.plan = [(key, where[i]) for key, i in self.answers]
        self.answers = []


def _front(a: np.ndarray, key) -> np.ndarray:
    """The first elements of a (C-contiguous) as an array of key's shape: a view that holds a."""
    shape, _ = key
    return a.reshape(-1)[:int(np.prod(shape, dtype=np.int64))].reshape(shape)


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
