"""Device arrays and kernel launches for one float type.

`DeviceOps` (held as `eng` by the CUDA executor) wraps the compiled kernels of
rnndsl.kernels.cuda with small functions that allocate their outputs and pick
the launch configuration, so the layer code reads like the NumPy code of the
CPU layers (rnndsl/runtime/cpu); it is also the ops object of the recurrent plumbing
both engines share (rnndsl/runtime/recurrent.py). `DAct` is the device counterpart
of runtime.tensor.Act.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
from numba import cuda

from ...kernels.cuda import cells, gemm, geometry, ops, optim


@dataclass
class DAct:
    """What flows between layers on the device: data (T, B, F) / (B, F) / token ids (T, B),
    the mask as a device array and as a host copy (both None without one), and for the
    graph's inputs the host array the data was copied from."""

    data: object
    mask: object = None
    hmask: np.ndarray | None = None
    host: np.ndarray | None = None

    @property
    def seq(self) -> bool:
        return self.data.ndim == 3 or (self.data.ndim == 2 and self.data.dtype.kind in "iu")


class DeviceOps:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.ty = self.dtype.type
        self.gemm = gemm.Gemm(self.dtype)
        self.k = ops.build(self.dtype)
        self.cells = cells.build(self.dtype)
        self.opt = optim.build(self.dtype)
        g = geometry.geometry()
        self.block, self.max_blocks = g.block, g.max_blocks
        self.reduce_cols, self.reduce_rows = g.reduce_cols, g.reduce_rows
        # "absent" optional arguments: zero-length arrays keep one kernel signature
        self.none = cuda.device_array(0, self.dtype)
        self.none2 = cuda.device_array((0, 0), self.dtype)
        self.nomask = cuda.device_array((0, 0), np.uint8)

    # --- allocation and transfer ---------------------------------------------------------
    def empty(self, shape, dtype=None):
        return cuda.device_array(shape, dtype or self.dtype)

    def zeros(self, shape, dtype=None):
        a = self.empty(shape, dtype)
        self.fill(a, 0.0)
        return a

    def zeros_like(self, a):
        return self.zeros(a.shape)

    def upload(self, host, dtype=None):
        # (np.require, not ascontiguousarray: a scalar weight, shape (), stays 0-d)
        return cuda.to_device(np.require(host, dtype=dtype, requirements="C"))

    @staticmethod
    def flat(a):
        """A contiguous device array as a 1-D view."""
        return a.reshape(a.size)

    @staticmethod
    def rows(a):
        """(T, B, F) or (B, F) as a 2-D (rows, F) view."""
        f = a.shape[a.ndim - 1]          # (the simulator's shapes refuse negative indices)
        return a.reshape(a.size // f, f)

    # --- launches ------------------------------------------------------------------------
    def grid(self, n):
        """(blocks, threads) of a 1-D grid-stride launch over n items."""
        threads = min(self.block, n)
        return min(self.max_blocks, -(-n // threads)), threads

    def run(self, kernel, n, *args):
        if n > 0:
            kernel[self.grid(n)](*args)

    # --- element-wise --------------------------------------------------------------------
    def fill(self, a, value):
        self.run(self.k.fill, a.size, self.flat(a), self.ty(value))
        return a

    def copy(self, a):
        out = self.empty(a.shape)
        self.run(self.k.copy, a.size, self.flat(out), self.flat(a))
        return out

    def assign(self, dst, src):
        """dst[...] = src (same shape, both contiguous)."""
        self.run(self.k.copy, dst.size, self.flat(dst), self.flat(src))

    def add(self, a, b):
        out = self.empty(a.shape)
        self.run(self.k.add, a.size, self.flat(out), self.flat(a), self.flat(b))
        return out

    def mul(self, a, b):
        out = self.empty(a.shape)
        self.run(self.k.mul, a.size, self.flat(out), self.flat(a), self.flat(b))
        return out

    def scale(self, a, alpha):
        out = self.empty(a.shape)
        self.run(self.k.scale, a.size, self.flat(out), self.flat(a), self.ty(alpha))
        return out

    def mul_bcast(self, a, m):
        """a * m with m broadcast over a's leading axis ((T, B, F) times (B, F))."""
        out = self.empty(a.shape)
        self.run(self.k.mul_bcast, a.size, self.flat(out), self.flat(a), self.flat(m))
        return out

    @staticmethod
    def together():
        """The CPU's concurrent kernel calls; on the device the stream orders them anyway."""
        return nullcontext()

    def reverse_time(self, a):
        out = self.empty(a.shape)
        self.run(self.k.reverse_time, a.size, self.flat(out), self.flat(a), a.size // a.shape[0])
        return out

    def colsum(self, out, A, A2=None, w=None, divisor=1.0, accumulate=False):
        """out[j] (+)= sum_r w[r] A[r, j] A2[r, j] / divisor over the rows of 2-D A."""
        C = A.shape[1]
        if C == 0:
            return out
        shared = self.reduce_cols * self.reduce_rows * self.dtype.itemsize
        self.k.colsum[(-(-C // self.reduce_cols),), (self.reduce_cols, self.reduce_rows), 0, shared](
            out, A, self.none2 if A2 is None else A2, self.none if w is None else w,
            self.ty(divisor), int(accumulate))
        return out

    def sumsq(self, acc, a):
        """acc[0] += sum(a^2) (acc: a float64 device array of one element)."""
        n = a.size
        if n:
            threads = self.reduce_cols * self.reduce_rows
            blocks = min(self.max_blocks, -(-n // threads))
            self.k.sumsq[blocks, threads, 0, threads * 8](acc, self.flat(a))

    # --- for the shared recurrent plumbing (runtime/recurrent.py) ------------------------
    # A mask there is the pair (device mask, host mask) of a DAct, or None.
    last_into_final = False

    @staticmethod
    def act(data, mask=None) -> DAct:
        return DAct(data) if mask is None else DAct(data, *mask)

    def reversed_mask(self, mask):
        h = np.ascontiguousarray(mask[1][::-1])
        return self.upload(h), h

    @staticmethod
    def as_dout(g, out):
        return g

    def concat_features(self, a, b):
        """[a, b] along the last axis."""
        ua, ub = a.shape[a.ndim - 1], b.shape[b.ndim - 1]
        y = self.empty(a.shape[:-1] + (ua + ub,))
        for part, off in ((a, 0), (b, ua)):
            self.run(self.k.put_cols, part.size, self.rows(y), self.rows(part), off)
        return y

    def concat_reversed(self, a, b):
        """[a, b reversed in time] along the last axis."""
        return self.concat_features(a, self.reverse_time(b))

    def split_features(self, g, u: int):
        """(g[..., :u], g[..., u:]) as new arrays: concat_features undone."""
        w = g.shape[g.ndim - 1]
        parts = self.empty(g.shape[:-1] + (u,)), self.empty(g.shape[:-1] + (w - u,))
        for part, off in zip(parts, (0, u)):
            self.run(self.k.take_cols, part.size, self.rows(part), self.rows(g), off)
        return parts
