"""Tiled shared-memory matrix product: ``C = [C +] op(A) @ op(B) [+ bias]``.

``op(X)`` is X or its transpose (flags ``ta``, ``tb``), so one kernel serves
every product of the engine: the input projection of all steps
``X (T*B, F) @ W``, the per-step recurrent product ``h (B, u) @ U``, and in
backward ``dZ @ U^T``, ``X^T @ dZ`` (weight gradients summed over all steps
in one product), ``dZ @ W^T``. Operands may be strided views (a gate block
``U[:, 2u:]`` of a kernel, a time step ``xp[t]``).

Each block owns a ``tm x tm`` tile of C (block index x: tile column, y: tile
row). It walks K in slices of ``tk``: its threads first copy a ``tk x tm``
slice of op(A) and of op(B) into shared memory (dynamic shared memory,
``2 * tk * tm`` elements, given at launch), synchronise, then each thread
accumulates its ``r x r`` outputs from shared memory. The copy maps
consecutive threads to consecutive addresses of the operand *in global
memory* (along K for a row-major A, along M for a transposed one), so loads
coalesce whatever the transpose flags. A thread's outputs are strided by the
block edge (rows ``ty + a*td``, columns ``tx + c*td``) so that neighbouring
threads read neighbouring shared-memory words (no bank conflicts) and write
neighbouring columns of C (coalesced stores).

Grid: ``(ceil(N / tm), ceil(M / tm))``; block: ``(tm // r, tm // r)``.
Two tile shapes are compiled (geometry.py): a 64x64 tile with 4x4 outputs per
thread for wide products and a 16x16 tile with one output per thread for the
narrow per-step product, where many small blocks beat few large ones.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import cuda, from_dtype

from .geometry import GemmTile, geometry


@lru_cache(maxsize=None)
def make(np_dtype, tile: GemmTile):
    """The GEMM kernel of one float type and tile shape (built once)."""
    dt = from_dtype(np_dtype)
    zero = np_dtype.type(0)
    tm, tk, r = tile.tm, tile.tk, tile.r
    td = tile.threads
    nthreads = td * td
    b_off = tk * tm                      # where op(B)'s tile starts in the shared buffer

    @cuda.jit
    def gemm(A, B, C, bias, ta, tb, accumulate):
        # dynamic shared memory, two tiles: [0, tk*tm) holds op(A)[row0 + i, k0 + k] at k*tm + i,
        # [tk*tm, 2*tk*tm) holds op(B)[k0 + k, col0 + j] at tk*tm + k*tm + j
        tiles = cuda.shared.array(0, dt)
        acc = cuda.local.array((r, r), dt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * td + tx
        M = C.shape[0]
        N = C.shape[1]
        K = A.shape[0] if ta else A.shape[1]
        row0 = cuda.blockIdx.y * tm
        col0 = cuda.blockIdx.x * tm
        for a in range(r):
            for c in range(r):
                acc[a, c] = zero
        for k0 in range(0, K, tk):
            for e in range(tid, tk * tm, nthreads):
                if ta:                          # A is (K, M): consecutive threads, consecutive i
                    kk = e // tm
                    ii = e - kk * tm
                else:                           # A is (M, K): consecutive threads, consecutive k
                    ii = e // tk
                    kk = e - ii * tk
                i = row0 + ii
                k = k0 + kk
                v = zero
                if i < M and k < K:
                    v = A[k, i] if ta else A[i, k]
                tiles[kk * tm + ii] = v
            for e in range(tid, tk * tm, nthreads):
                if tb:                          # B is (N, K): consecutive k
                    jj = e // tk
                    kk = e - jj * tk
                else:                           # B is (K, N): consecutive j
                    kk = e // tm
                    jj = e - kk * tm
                j = col0 + jj
                k = k0 + kk
                v = zero
                if j < N and k < K:
                    v = B[j, k] if tb else B[k, j]
                tiles[b_off + kk * tm + jj] = v
            cuda.syncthreads()
            for kk in range(tk):
                for a in range(r):
                    av = tiles[kk * tm + ty + a * td]
                    for c in range(r):
                        acc[a, c] += av * tiles[b_off + kk * tm + tx + c * td]
            cuda.syncthreads()              # the next slice overwrites the tiles
        for a in range(r):
            i = row0 + ty + a * td
            if i < M:
                for c in range(r):
                    j = col0 + tx + c * td
                    if j < N:
                        v = acc[a, c]
                        if bias.shape[0] > 0:
                            v += bias[j]
                        if accumulate:
                            v += C[i, j]
                        C[i, j] = v

    return gemm


class Gemm:
    """The two compiled tile shapes of one float type, and the launch rule."""

    def __init__(self, np_dtype):
        g = geometry()
        self.big, self.small = g.gemm_big, g.gemm_small
        self.big_min_blocks = g.big_min_blocks
        self.k_big = make(np.dtype(np_dtype), self.big)
        self.k_small = make(np.dtype(np_dtype), self.small)
        self.no_bias = cuda.device_array(0, np_dtype)
        self.itemsize = np.dtype(np_dtype).itemsize

    def __call__(self, A, B, C, bias=None, ta=False, tb=False, accumulate=False):
        """C = [C +] op(A) @ op(B) [+ bias]; C is written in place and returned."""
        M, N = C.shape
        K = A.shape[0] if ta else A.shape[1]
        if M == 0 or N == 0:
            return C
        assert (A.shape[1] if ta else A.shape[0]) == M and (B.shape[0] if tb else B.shape[1]) == N \
            and (B.shape[1] if tb else B.shape[0]) == K, (A.shape, B.shape, C.shape, ta, tb)
        big = self.big
        if -(-M // big.tm) * -(-N // big.tm) >= self.big_min_blocks:
            tile, kernel = big, self.k_big
        else:
            tile, kernel = self.small, self.k_small
        grid = (-(-N // tile.tm), -(-M // tile.tm))
        shared = 2 * tile.tk * tile.tm * self.itemsize
        kernel[grid, (tile.threads, tile.threads), 0, shared](A, B, C, self.no_bias if bias is None else bias,
                                                             int(ta), int(tb), int(accumulate))
        return C
