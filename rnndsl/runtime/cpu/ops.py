"""The CPU engine's operations for the shared recurrent plumbing (runtime/recurrent.py):
NumPy arrays, the train step's pool (kernels/cpu/buffers.py) for gradients the cells only
read."""

from __future__ import annotations

import numpy as np

from ...kernels.cpu import buffers, parallel
from ..tensor import Act

_ZEROS: dict = {}


def read_only_zeros(shape, dtype) -> np.ndarray:
    """A zero array kept for reuse, flagged read-only: it is never filled again, and a
    kernel that wrote to it would fail loudly instead of corrupting later steps."""
    key = (tuple(shape), np.dtype(dtype))
    z = _ZEROS.get(key)
    if z is None:
        if len(_ZEROS) > 16:
            _ZEROS.clear()
        z = _ZEROS[key] = np.zeros(key[0], dtype)
        z.flags.writeable = False
    return z


class CpuOps:
    last_into_final = True

    @staticmethod
    def act(data, mask=None) -> Act:
        return Act(np.ascontiguousarray(data), mask)

    @staticmethod
    def reversed_mask(mask):
        return mask[::-1]

    @staticmethod
    def zeros(shape, dtype):
        return buffers.zeros(shape, dtype)

    read_only_zeros = staticmethod(read_only_zeros)

    @staticmethod
    def zeros_like(a):
        # a state's or a weight's shape (a C array): np.zeros, a fraction of np.zeros_like's cost
        return np.zeros(a.shape, a.dtype)

    @staticmethod
    def add(a, b):
        return a + b

    @staticmethod
    def mul(a, b):
        return a * b

    @staticmethod
    def scale(a, alpha):
        return a * a.dtype.type(alpha)

    @staticmethod
    def assign(dst, src):
        dst[...] = src

    @staticmethod
    def reverse_time(a):
        return np.ascontiguousarray(a[::-1])

    @staticmethod
    def concat_features(a, b):
        return np.concatenate([a, b], axis=-1)

    @staticmethod
    def concat_reversed(a, b):
        # one pass reading b backwards: a reversed copy of b first took a second one
        return np.concatenate([a, b[::-1]], axis=-1)

    @staticmethod
    def split_features(g, u: int):
        return g[..., :u], g[..., u:]

    @staticmethod
    def together():
        """Kernel calls that read nothing the others write, run at once (parallel.together)."""
        return parallel.together()

    @staticmethod
    def as_dout(g, out):
        # the kernels only read dout
        if g.dtype != out.dtype:
            return None
        if g.flags.c_contiguous:
            return g
        if g.shape != out.shape:
            return None
        # a strided view (concat's half): one copy, where zeros then assign pass twice
        d = buffers.empty(g.shape, g.dtype)
        d[...] = g
        return d


OPS = CpuOps()
