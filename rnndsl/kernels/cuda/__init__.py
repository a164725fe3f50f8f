"""CUDA kernels (numba.cuda) of the device engine, rnndsl/runtime/cuda.

Design
------
A recurrent layer's work splits into what is parallel over time and what is
not. Everything parallel over time is one large product; only the chain
through h_{t-1} runs step by step, and each step is two launches:

    forward   xp = x @ W + b                     gemm: all T*B rows at once (big tiles)
              per step s (t = s, or T-1-s with go_backwards):
                Zr = h_rec[t] @ U                gemm: B x G (small tiles)
                <cell>_step                      ONE fused kernel: every gate of a unit, the
                                                 state update and masked commit, the output,
                                                 what backward needs, the next step's h_rec
    backward  per step, last to first:
                <cell>_back                      ONE fused kernel: dh (from the step undone
                                                 before, or carried through padding) + dout,
                                                 the gate gradients dxp[t] (and dc for LSTM)
                dHrec = dxp[t] @ U^T             gemm
              dU = h_rec^T @ dxp, dW = x^T @ dxp, dx = dxp @ W^T
                                                 gemm each, batched over all T*B rows
              db = column sums of dxp            reduction

GRU with reset_after=false needs ``(r * h) @ U_h`` inside a step, so its step
is gemm, kernel, gemm, kernel (and so is its backward). Dense layers are a
gemm plus an element-wise (or, for softmax, row-wise) kernel; batchnorm is
column reductions plus element-wise kernels; the optimizer update is one fused
element-wise kernel per parameter (optim.py). No warp-level intrinsics are
used (shuffles, votes): reductions go through shared memory with
``syncthreads``, the embedding gradient through atomic adds, so numba's CUDA
simulator runs every kernel.

Kernels are built per float type (``build(dtype)`` in each module, cached):
their constants are scalars of that type, so float32 kernels do float32
arithmetic only (checked by tests/cuda_engine/ptx_check.py, which compiles every
kernel to PTX without a GPU).

Launch geometry (geometry.py: the real-GPU numbers; the simulator uses tiny ones)
-------------------------------------------------------------------------------
gemm (gemm.py)     block (tm/r, tm/r) threads computing a tm x tm tile of C, r x r outputs
                   per thread; grid (ceil(N/tm), ceil(M/tm)); dynamic shared memory for two
                   tk x tm tiles of op(A) and op(B).
                   big:   tm=64, tk=16, r=4 -> 16x16 threads, 8 KiB shared (float32)
                   small: tm=16, tk=16, r=1 -> 16x16 threads, 2 KiB shared
                   big is used once it yields >= 128 blocks (about one per SM), so the
                   narrow per-step product (B x G) gets many small blocks.
cells, element-wise  1-D grid-stride: 256 threads per block, grid min(ceil(n/256), 4096);
                   cells: one thread per (batch row, unit), n = B * units.
column reductions  block (32 columns, 8 row lanes), grid ceil(C/32), 8x32 shared partial
                   sums halved in a tree; sum of squares: 256-thread blocks, then one
                   atomic add per block.
row kernels        softmax: one thread per row.

Modules: gemm.py (the product), cells.py (recurrent steps), ops.py (everything
element-wise, row-wise, reductions, embedding, batchnorm), optim.py
(optimizer updates), activations.py (device functions), geometry.py.
"""
