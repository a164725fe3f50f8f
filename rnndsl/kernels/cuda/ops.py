"""Element-wise, row-wise and column-reduction kernels for the non-recurrent layers.

Element-wise kernels take flat (1-D, contiguous) views and loop grid-stride
over them, one element per thread; sequences are time-major (T, B, F) so "the
same (b, f) at every step" is ``index % (B*F)``. Row kernels (softmax) give a
thread a whole row. Column reductions (bias gradients, batch statistics) use
a 2-D block: ``reduce_cols`` columns (threadIdx.x, so a warp reads contiguous
memory) by ``reduce_rows`` row lanes (threadIdx.y) that stride over the rows;
the lanes' partial sums meet in shared memory and are halved in a tree
(``syncthreads`` between levels, no warp shuffles). Grid:
``ceil(columns / reduce_cols)``.

Shared memory is always the dynamic kind (``cuda.shared.array(0, ...)``, its
size given at launch). Besides letting one kernel serve several block shapes,
this sidesteps a race in numba's simulator, which allocates static shared
arrays lazily per block without a lock, so two threads could get different
"shared" arrays.

The embedding gradient is a scatter-add: rows with the same token id add to
the same table row, so it uses atomic adds (one thread per (row, feature)).
"""

from __future__ import annotations

import math
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
from numba import cuda, float64, from_dtype

from . import activations
from .geometry import geometry


@lru_cache(maxsize=None)
def build(np_dtype: np.dtype) -> SimpleNamespace:
    A = activations.build(np_dtype)
    act, dact = A.act, A.dact
    ZERO, ONE, HALF = A.ZERO, A.ONE, A.HALF
    TWO = np.dtype(np_dtype).type(2.0)
    dt = from_dtype(np_dtype)
    geo = geometry()
    RC, RR = geo.reduce_cols, geo.reduce_rows

    # --- element-wise --------------------------------------------------------------------

    @cuda.jit
    def fill(a, v):
        for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            a[i] = v

    @cuda.jit
    def copy(dst, src):
        for i in range(cuda.grid(1), dst.shape[0], cuda.gridsize(1)):
            dst[i] = src[i]

    @cuda.jit
    def add(dst, a, b):
        for i in range(cuda.grid(1), dst.shape[0], cuda.gridsize(1)):
            dst[i] = a[i] + b[i]

    @cuda.jit
    def mul(dst, a, b):
        for i in range(cuda.grid(1), dst.shape[0], cuda.gridsize(1)):
            dst[i] = a[i] * b[i]

    @cuda.jit
    def scale(dst, a, alpha):
        for i in range(cuda.grid(1), dst.shape[0], cuda.gridsize(1)):
            dst[i] = a[i] * alpha

    @cuda.jit
    def mul_bcast(dst, a, m):
        """dst = a * m[i % len(m)]: a (B, F) mask applied at every time step."""
        n = m.shape[0]
        for i in range(cuda.grid(1), dst.shape[0], cuda.gridsize(1)):
            dst[i] = a[i] * m[i % n]

    @cuda.jit
    def mask_steps(mask, X, value, F):
        """mask[r] = 0 where every feature of row r of X (rows of F, flat) equals value, else 1."""
        for r in range(cuda.grid(1), mask.shape[0], cuda.gridsize(1)):
            m = 0
            for f in range(F):
                if X[r * F + f] != value:
                    m = 1
            mask[r] = m

    @cuda.jit
    def keep_rows(dst, a, mask, F):
        """dst = a where row i // F of the 0/1 mask is 1, else 0 (a: rows of F, flat)."""
        for i in range(cuda.grid(1), dst.shape[0], cuda.gridsize(1)):
            dst[i] = a[i] if mask[i // F] != 0 else ZERO

    # --- over the steps of a time-major (T, B, F) sequence: i indexes (b, f), T*B*F flat ---

    @cuda.jit
    def avg_steps(Y, X, w, T, F):
        """Y[i] = sum_t w[t, b] X[t, i] / sum_t w[t, b] (0 when no step counts); w the (T, B)
        0/1 mask, flat, or empty: every step counts."""
        BF = Y.shape[0]
        for i in range(cuda.grid(1), BF, cuda.gridsize(1)):
            b = i // F
            total = ZERO
            count = ZERO
            for t in range(T):
                if w.shape[0] == 0 or w[t * (BF // F) + b] != 0:
                    total += X[t * BF + i]
                    count += ONE
            Y[i] = total / count if count > ZERO else ZERO

    @cuda.jit
    def avg_steps_back(dX, dY, w, T, F):
        """dX[t, i] = w[t, b] dY[i] / sum_t w[t, b]: avg_steps undone."""
        BF = dY.shape[0]
        for i in range(cuda.grid(1), BF, cuda.gridsize(1)):
            b = i // F
            count = ZERO
            for t in range(T):
                if w.shape[0] == 0 or w[t * (BF // F) + b] != 0:
                    count += ONE
            for t in range(T):
                real = w.shape[0] == 0 or w[t * (BF // F) + b] != 0
                dX[t * BF + i] = dY[i] / count if real else ZERO

    @cuda.jit
    def max_steps(Y, at, X, T):
        """Y[i] = max_t X[t, i], at[i] the first step that holds it (T >= 1)."""
        BF = Y.shape[0]
        for i in range(cuda.grid(1), BF, cuda.gridsize(1)):
            best = X[i]
            k = 0
            for t in range(1, T):
                v = X[t * BF + i]
                if v > best:
                    best = v
                    k = t
            Y[i] = best
            at[i] = k

    @cuda.jit
    def max_steps_back(dX, dY, at, T):
        """dX[t, i] = dY[i] at the step max_steps chose, else 0."""
        BF = dY.shape[0]
        for i in range(cuda.grid(1), BF, cuda.gridsize(1)):
            for t in range(T):
                dX[t * BF + i] = dY[i] if t == at[i] else ZERO

    @cuda.jit
    def steps_to_rows(Y, X, T, B, F):
        """Y[b, t F + f] = X[t, b, f]: a time-major sequence as one row per sample."""
        for i in range(cuda.grid(1), Y.shape[0], cuda.gridsize(1)):
            b = i // (T * F)
            r = i - b * (T * F)
            Y[i] = X[((r // F) * B + b) * F + r % F]

    @cuda.jit
    def rows_to_steps(X, Y, T, B, F):
        """steps_to_rows undone: X[t, b, f] = Y[b, t F + f]."""
        for j in range(cuda.grid(1), X.shape[0], cuda.gridsize(1)):
            f = j % F
            tb = j // F
            t = tb // B
            b = tb - t * B
            X[j] = Y[b * (T * F) + t * F + f]

    @cuda.jit
    def repeat(dst, x):
        """dst (n, B, F) = n copies of x (B, F)."""
        n = x.shape[0]
        for i in range(cuda.grid(1), dst.shape[0], cuda.gridsize(1)):
            dst[i] = x[i % n]

    @cuda.jit
    def sum_copies(dst, d, copies):
        """dst (B, F) = sum over the n copies of d (n, B, F): undoes repeat."""
        n = dst.shape[0]
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            s = ZERO
            for c in range(copies):
                s += d[c * n + i]
            dst[i] = s

    @cuda.jit
    def reverse_time(dst, src, step):
        """dst[t] = src[T-1-t] for flat (T, B, F) arrays; step = B*F."""
        T = dst.shape[0] // step
        for i in range(cuda.grid(1), dst.shape[0], cuda.gridsize(1)):
            t = i // step
            dst[i] = src[(T - 1 - t) * step + (i - t * step)]

    @cuda.jit
    def put_cols(dst, src, off):
        """dst[:, off:off+w] = src, both 2-D (rows, features): concat."""
        w = src.shape[1]
        for i in range(cuda.grid(1), src.shape[0] * w, cuda.gridsize(1)):
            r = i // w
            j = i - r * w
            dst[r, off + j] = src[r, j]

    @cuda.jit
    def take_cols(dst, src, off):
        """dst = src[:, off:off+w]: the backward of concat."""
        w = dst.shape[1]
        for i in range(cuda.grid(1), dst.shape[0] * w, cuda.gridsize(1)):
            r = i // w
            j = i - r * w
            dst[r, j] = src[r, off + j]

    # --- dense activations ---------------------------------------------------------------

    @cuda.jit
    def act_inplace(z, code):
        for i in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
            z[i] = act(z[i], code)

    @cuda.jit
    def act_back(dz, y, dy, code):
        """dz = dy * f'(x) from y = f(x)."""
        for i in range(cuda.grid(1), dz.shape[0], cuda.gridsize(1)):
            dz[i] = dy[i] * dact(y[i], code)

    @cuda.jit
    def softmax_rows(z):
        """z = softmax(z) over each row, in place: exp(z - max) / sum."""
        C = z.shape[1]
        for r in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
            m = z[r, 0]
            for j in range(1, C):
                if z[r, j] > m:
                    m = z[r, j]
            s = ZERO
            for j in range(C):
                e = math.exp(z[r, j] - m)
                z[r, j] = e
                s += e
            for j in range(C):
                z[r, j] = z[r, j] / s

    @cuda.jit
    def softmax_back_rows(dz, y, dy):
        """dz = y * (dy - sum(dy * y)) per row."""
        C = y.shape[1]
        for r in range(cuda.grid(1), y.shape[0], cuda.gridsize(1)):
            s = ZERO
            for j in range(C):
                s += dy[r, j] * y[r, j]
            for j in range(C):
                dz[r, j] = y[r, j] * (dy[r, j] - s)

    # --- embedding -----------------------------------------------------------------------

    @cuda.jit
    def gather_rows(Y, E, ids):
        """Y[r] = E[ids[r]]."""
        D = E.shape[1]
        for i in range(cuda.grid(1), Y.shape[0] * D, cuda.gridsize(1)):
            r = i // D
            k = i - r * D
            Y[r, k] = E[ids[r], k]

    @cuda.jit
    def scatter_add_rows(dE, dY, ids):
        """dE[ids[r]] += dY[r] (atomic: ids repeat)."""
        D = dE.shape[1]
        for i in range(cuda.grid(1), dY.shape[0] * D, cuda.gridsize(1)):
            r = i // D
            k = i - r * D
            cuda.atomic.add(dE, (ids[r], k), dY[r, k])

    # --- column reductions ---------------------------------------------------------------

    @cuda.jit
    def colsum(out, A, A2, w, divisor, accumulate):
        """out[j] (+)= sum_r w[r] A[r, j] A2[r, j] / divisor; w and A2 optional (zero-length)."""
        part = cuda.shared.array(0, dt)          # RR x RC partial sums (dynamic shared memory)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        j = cuda.blockIdx.x * RC + tx
        R = A.shape[0]
        C = A.shape[1]
        s = ZERO
        if j < C:
            for r in range(ty, R, RR):
                v = A[r, j]
                if A2.shape[0] > 0:
                    v *= A2[r, j]
                if w.shape[0] > 0:
                    v *= w[r]
                s += v
        part[ty * RC + tx] = s
        cuda.syncthreads()
        half = RR // 2
        while half > 0:                    # tree over the row lanes (RR is a power of two)
            if ty < half:
                part[ty * RC + tx] += part[(ty + half) * RC + tx]
            cuda.syncthreads()
            half //= 2
        if ty == 0 and j < C:
            v = part[tx] / divisor
            if accumulate:
                v += out[j]
            out[j] = v

    @cuda.jit
    def sumsq(out, a):
        """out[0] += sum(a^2), in float64 (a block tree, then one atomic add per block)."""
        part = cuda.shared.array(0, float64)     # one partial sum per thread (dynamic shared memory)
        tid = cuda.threadIdx.x
        s = 0.0
        for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            v = float(a[i])
            s += v * v
        part[tid] = s
        cuda.syncthreads()
        half = (RC * RR) // 2
        while half > 0:
            if tid < half:
                part[tid] += part[tid + half]
            cuda.syncthreads()
            half //= 2
        if tid == 0:
            cuda.atomic.add(out, 0, part[0])

    # --- batch normalisation -------------------------------------------------------------

    @cuda.jit
    def sub_cols(dst, X, v):
        """dst[r, j] = X[r, j] - v[j] (flat)."""
        C = v.shape[0]
        for i in range(cuda.grid(1), dst.shape[0], cuda.gridsize(1)):
            dst[i] = X[i] - v[i % C]

    @cuda.jit
    def mul_cols(dst, X, v):
        """dst[r, j] = X[r, j] * v[j] (flat)."""
        C = v.shape[0]
        for i in range(cuda.grid(1), dst.shape[0], cuda.gridsize(1)):
            dst[i] = X[i] * v[i % C]

    @cuda.jit
    def inv_std(out, var, eps):
        """out = 1 / sqrt(var + eps)."""
        for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
            out[i] = ONE / math.sqrt(var[i] + eps)

    @cuda.jit
    def lerp(dst, a, b, m, one_minus_m):
        """dst = m a + (1 - m) b: a moving statistic's update."""
        for i in range(cuda.grid(1), dst.shape[0], cuda.gridsize(1)):
            dst[i] = m * a[i] + one_minus_m * b[i]

    @cuda.jit
    def bn_apply(Xhat, Y, Xc, inv, gamma, beta):
        """Xhat = Xc * inv; Y = Xhat * gamma + beta (gamma, beta optional), flat (rows*C)."""
        C = inv.shape[0]
        for i in range(cuda.grid(1), Y.shape[0], cuda.gridsize(1)):
            j = i % C
            xh = Xc[i] * inv[j]
            Xhat[i] = xh
            y = xh * gamma[j] if gamma.shape[0] > 0 else xh
            if beta.shape[0] > 0:
                y += beta[j]
            Y[i] = y

    @cuda.jit
    def bn_stat_grads(dvar, dmean, s_xc, s_dxh, inv):
        """dvar = -1/2 sum(dXhat Xc) inv^3; dmean = -sum(dXhat) inv."""
        for j in range(cuda.grid(1), inv.shape[0], cuda.gridsize(1)):
            iv = inv[j]
            dvar[j] = (-HALF * s_xc[j]) * (iv * iv * iv)
            dmean[j] = -s_dxh[j] * iv

    @cuda.jit
    def bn_back(dX, dXhat, Xc, inv, w, inv_n, dvar, dmean):
        """dX = dXhat inv + (w / n) (dmean + 2 Xc dvar), flat; w optional (every row real)."""
        C = inv.shape[0]
        for i in range(cuda.grid(1), dX.shape[0], cuda.gridsize(1)):
            j = i % C
            r = i // C
            wr = w[r] * inv_n if w.shape[0] > 0 else inv_n
            dX[i] = dXhat[i] * inv[j] + wr * (dmean[j] + TWO * Xc[i] * dvar[j])

    return SimpleNamespace(
        fill=fill, copy=copy, add=add, mul=mul, scale=scale, mul_bcast=mul_bcast, mask_steps=mask_steps,
        keep_rows=keep_rows, avg_steps=avg_steps, avg_steps_back=avg_steps_back, max_steps=max_steps,
        max_steps_back=max_steps_back, steps_to_rows=steps_to_rows, rows_to_steps=rows_to_steps, repeat=repeat,
        sum_copies=sum_copies, reverse_time=reverse_time, put_cols=put_cols, take_cols=take_cols,
        act_inplace=act_inplace, act_back=act_back, softmax_rows=softmax_rows,
        softmax_back_rows=softmax_back_rows, gather_rows=gather_rows, scatter_add_rows=scatter_add_rows,
        colsum=colsum, sumsq=sumsq, sub_cols=sub_cols, mul_cols=mul_cols, inv_std=inv_std, lerp=lerp,
        bn_apply=bn_apply, bn_stat_grads=bn_stat_grads, bn_back=bn_back)
