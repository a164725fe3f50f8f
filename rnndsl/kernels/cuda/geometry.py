"""Launch geometry of the CUDA kernels: block sizes, tiles, grids.

Two sets of numbers: one for real GPUs, one for numba's CUDA simulator. The
kernels' code is the same; only these compile-time constants differ. The
simulator runs every CUDA thread as a Python thread and a block's threads in
lock step at each ``syncthreads()``, so there a block of 256 threads costs
hundreds of milliseconds; its tiles are therefore 2x2 threads, which still
crosses tile edges, grid-stride loops and both GEMM variants with the tiny
shapes of the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from numba.core import config


@dataclass(frozen=True)
class GemmTile:
    """A GEMM block computes a ``tm x tm`` tile of C, reading K in slices of ``tk``.

    Its ``(tm // r)^2`` threads each compute ``r x r`` outputs (register
    blocking: every value read from shared memory feeds r multiply-adds).
    Shared memory: two ``tk x tm`` tiles (op(A) and op(B) slices).
    """

    tm: int
    tk: int
    r: int

    @property
    def threads(self) -> int:
        """Threads along each block edge."""
        return self.tm // self.r


@dataclass(frozen=True)
class Geometry:
    gemm_big: GemmTile        # wide products: all steps' input projection, weight gradients
    gemm_small: GemmTile      # narrow products: the per-step recurrent product (batch x gates*units)
    big_min_blocks: int       # use gemm_big once it gives at least this many blocks
    block: int                # threads per block of the element-wise and gate kernels
    max_blocks: int           # grid cap of those kernels (grid-stride loops cover the rest)
    reduce_cols: int          # column reductions: columns per block (threadIdx.x) ...
    reduce_rows: int          # ... and row lanes per column (threadIdx.y), summed in shared memory


HARDWARE = Geometry(
    gemm_big=GemmTile(tm=64, tk=16, r=4),     # 16x16 threads, 4x4 outputs each, 2 x 4 KiB shared (float32)
    gemm_small=GemmTile(tm=16, tk=16, r=1),   # 16x16 threads, one output each, 2 x 1 KiB shared
    big_min_blocks=128,                       # about one block per SM of a large GPU
    block=256,
    max_blocks=4096,
    reduce_cols=32,
    reduce_rows=8,
)

SIMULATOR = Geometry(
    gemm_big=GemmTile(tm=4, tk=4, r=2),
    gemm_small=GemmTile(tm=2, tk=2, r=1),
    big_min_blocks=2,
    block=4,
    max_blocks=2,
    reduce_cols=2,
    reduce_rows=2,
)


def simulated() -> bool:
    """numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1 before numba was imported)."""
    return bool(config.ENABLE_CUDASIM)


def geometry() -> Geometry:
    return SIMULATOR if simulated() else HARDWARE
