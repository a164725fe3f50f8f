"""Dot-product attention (Keras's Attention, score_mode="dot") on the CPU, compiled, reading
the time-major inputs in place. Per sample b (every sample independent, so the batch splits
across the workers as the recurrent kernels' rows do):

    S_ij = s * q_i . k_j,  minus MASKED_SHIFT where value step j is padding (vmask) or,
                           causal, j > i
    A_i  = softmax_j(S_i),  Ad = A * drop (dropout in training: m / (1 - rate), or none)
    C_i  = sum_j Ad_ij v_j,  0 where query step i is padding (qmask)

q (Tq, B, d), k (Tv, B, d), v (Tv, B, dv); C (Tq, B, dv); A (B, Tq, Tv), kept for the
backward (in inference nothing is kept: a row at a time); the scores output P = Ad
(Tq, B, Tv). Backward, with dC zeroed at padded query steps:

    dAd_ij = dC_i . v_j (+ dP_ij),  dV_j = sum_i Ad_ij dC_i,  dA = dAd * drop
    dS_ij  = A_ij (dA_ij - sum_l dA_il A_il)           (the shift is a constant)
    G_i    = sum_j dS_ij k_j:  dQ_i = s G_i,  dK_j = s sum_i dS_ij q_i,  ds = sum_i q_i . G_i

The products go four rows at a time (one pass over the shared row for four dot products, or
one load and store of the output row for four terms), on rows of d or dv contiguous floats.
In float32 the softmax's exp is a polynomial that vectorises (libm's expf does not; see
exp_).

Optional arrays are zero-size stand-ins (one signature per dtype, as activations.py's
kernels). Without a key of its own, k is v: the backward adds dK into dV.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from . import buffers
from .activations import stand_in
from .parallel import run_rows

# reassoc lets the dot products' sums vectorise; contract, their FMAs; NaN and inf stay exact
_OPTIONS = dict(cache=True, error_model="numpy", nogil=True, fastmath={"reassoc", "contract"})
_INLINE = dict(inline="always", error_model="numpy", fastmath={"reassoc", "contract"})

# Cephes's expf: e^x = 2^n e^r, n = round(x / ln 2), r = x - n ln 2 (ln 2 in two parts), e^r
# = 1 + r + r^2 P(r) on |r| <= ln 2 / 2; about 1 ulp
_LN2_HI, _LN2_LO = 0.693359375, -2.12194440e-4
_EXP_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)
# below this e^x (4.4e-38) is taken as 0: 2^n stays a normal float
EXP_FLUSH = -86.0


def exp_(x):
    """e^x for the softmax, whose arguments are <= 0 (x - max): float64 by libm; float32 by
    the polynomial above, 0 below EXP_FLUSH, NaN for NaN (not for x > 88: overflow)."""
    return math.exp(x) if x >= EXP_FLUSH or x != x else 0.0


@intrinsic
def _f32_bits(typingctx, i):
    """The float32 whose bits are the low 32 bits of the integer i."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        low = builder.trunc(args[0], ir.IntType(32)) if i.bitwidth > 32 else args[0]
        return builder.bitcast(low, ir.FloatType())

    return types.float32(i), codegen


@overload(exp_, jit_options=dict(error_model="numpy"))
def _exp_impl(x):
    if x == types.float32:
        f = np.float32
        log2e, hi, lo, half, one, flush, zero = (f(math.log2(math.e)), f(_LN2_HI), f(_LN2_LO), f(0.5), f(1.0),
                                                 f(EXP_FLUSH), f(0.0))
        p0, p1, p2, p3, p4, p5 = (f(c) for c in _EXP_P)

        def impl(x):
            n = np.floor(x * log2e + half)
            r = (x - n * hi) - n * lo
            p = ((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5
            e = (p * r * r + r + one) * _f32_bits((np.int32(n) + np.int32(127)) << np.int32(23))
            return zero if x < flush else e         # a select: the loop still vectorises; NaN keeps e

        return impl
    if x == types.float64:
        return lambda x: np.exp(x)
    return None


# (rows are read as X[i, b, f], not through views X[i, b]: a view per row pair costs a
# reference count update, more than its dot product)
@njit(**_INLINE)
def _dots(out, X, i, b, Y, n):
    """out[j] = X[i, b] . Y[j, b] for j < n."""
    d = X.shape[2]
    z = X.dtype.type(0)
    j = 0
    while j + 4 <= n:
        a0 = a1 = a2 = a3 = z
        for f in range(d):
            xf = X[i, b, f]
            a0 += xf * Y[j, b, f]
            a1 += xf * Y[j + 1, b, f]
            a2 += xf * Y[j + 2, b, f]
            a3 += xf * Y[j + 3, b, f]
        out[j], out[j + 1], out[j + 2], out[j + 3] = a0, a1, a2, a3
        j += 4
    while j < n:
        a0 = z
        for f in range(d):
            a0 += X[i, b, f] * Y[j, b, f]
        out[j] = a0
        j += 1


@njit(**_INLINE)
def _combine(acc, w, Y, b, n):
    """acc = sum_{j < n} w[j] Y[j, b], in a scratch row: the outputs' rows lie 4 KiB apart
    from the rows read (time-major rows B d floats apart), and stores there stall the loads."""
    d = acc.shape[0]
    for f in range(d):
        acc[f] = 0
    j = 0
    while j + 4 <= n:
        w0, w1, w2, w3 = w[j], w[j + 1], w[j + 2], w[j + 3]
        for f in range(d):
            acc[f] += (w0 * Y[j, b, f] + w1 * Y[j + 1, b, f]) + (w2 * Y[j + 2, b, f] + w3 * Y[j + 3, b, f])
        j += 4
    while j < n:
        w0 = w[j]
        for f in range(d):
            acc[f] += w0 * Y[j, b, f]
        j += 1


@njit(**_INLINE)
def _put(O, r, c, acc, alpha):
    """O[r, c] = alpha acc."""
    for f in range(acc.shape[0]):
        O[r, c, f] = alpha * acc[f]


@njit(**_INLINE)
def _softmax(row, top):
    """row = exp(row - top) / sum(exp(row - top))."""
    total = row.dtype.type(0)
    for j in range(row.shape[0]):
        e = exp_(row[j] - top)
        row[j] = e
        total += e
    for j in range(row.shape[0]):
        row[j] /= total


@njit(**_OPTIONS)
def dot_forward_kernel(q, k, v, vmask, qmask, causal, scale, shift, drop, C, A, P, b0, b1):
    """Samples b0..b1: C, and A when it has B samples (training), P when it has Tq steps."""
    Tq, Tv = q.shape[0], k.shape[0]
    dt = C.dtype
    keep, scores, dropped, vmasked = A.shape[0] != 0, P.shape[0] != 0, drop.shape[0] != 0, vmask.shape[0] != 0
    W = A if keep else np.empty((1, Tq, Tv), dt)         # the weights; in inference one row at a time
    ad = np.empty(Tv, dt)
    acc = np.empty(C.shape[2], dt)
    one, zero = dt.type(1), dt.type(0)
    for b in range(b0, b1):
        wb = b if keep else 0
        for i in range(Tq):
            row = W[wb, i]
            _dots(row, q, i, b, k, Tv)
            top = dt.type(-np.inf)
            for j in range(Tv):
                sj = row[j] * scale
                if (vmasked and vmask[j, b] == 0) or (causal and j > i):
                    sj -= shift
                row[j] = sj
                top = max(top, sj)
            _softmax(row, top)
            if dropped:
                for j in range(Tv):
                    ad[j] = row[j] * drop[b, i, j]
                w = ad
            else:
                w = row
            if scores:
                for j in range(Tv):
                    P[i, b, j] = w[j]
            if qmask.shape[0] != 0 and qmask[i, b] == 0:        # a padded query step: context 0
                for f in range(acc.shape[0]):
                    C[i, b, f] = zero
            else:
                _combine(acc, w, v, b, Tv)
                _put(C, i, b, acc, one)


@njit(**_OPTIONS)
def dot_backward_kernel(q, k, v, qmask, scale, drop, A, dC, dP, dQ, dK, dV, ds, b0, b1):
    """Samples b0..b1: dQ, dK and dV (dK zero-size without a key: its gradient is added
    into dV), ds[b] the scale's gradient from sample b. dC, dP: zero-size when absent."""
    Tq, Tv = q.shape[0], k.shape[0]
    d = q.shape[2]
    dt = q.dtype
    has_dC, has_dP, dropped, own_key = dC.shape[0] != 0, dP.shape[0] != 0, drop.shape[0] != 0, dK.shape[0] != 0
    one, zero = dt.type(1), dt.type(0)
    g = np.empty(Tv, dt)
    G = np.empty(d, dt)
    accV = np.empty(v.shape[2], dt)
    St = np.empty((Tv, Tq), dt)          # dS, transposed: dK_j = s sum_i St[j, i] q_i
    Wt = np.empty((Tv, Tq), dt)          # Ad at real query steps, transposed: dV_j = sum_i Wt[j, i] dC_i
    for b in range(b0, b1):
        part = zero
        for i in range(Tq):
            real = has_dC and (qmask.shape[0] == 0 or qmask[i, b] != 0)
            a = A[b, i]
            if real:
                _dots(g, dC, i, b, v, Tv)
            else:
                for j in range(Tv):
                    g[j] = zero
            t = zero
            for j in range(Tv):
                if has_dP:
                    g[j] += dP[i, b, j]
                if dropped:
                    Wt[j, i] = a[j] * drop[b, i, j] if real else zero
                    g[j] *= drop[b, i, j]
                else:
                    Wt[j, i] = a[j] if real else zero
                t += g[j] * a[j]
            for j in range(Tv):
                g[j] = a[j] * (g[j] - t)                  # dS_ij
                St[j, i] = g[j]
            _combine(G, g, k, b, Tv)
            for f in range(d):
                part += q[i, b, f] * G[f]
            _put(dQ, i, b, G, scale)
        ds[b] = part
        for j in range(Tv):
            if has_dC:
                _combine(accV, Wt[j], dC, b, Tq)
            else:
                for f in range(accV.shape[0]):
                    accV[f] = zero
            _combine(G, St[j], q, b, Tq)
            if own_key:
                _put(dK, j, b, G, scale)
                _put(dV, j, b, accV, one)
            else:
                for f in range(d):
                    dV[j, b, f] = accV[f] + scale * G[f]


def _read(a):
    return buffers.read_only(np.ascontiguousarray(a))


def dot_forward(q, k, v, vmask, qmask, causal: bool, scale, shift, drop, keep: bool, scores: bool):
    """(C, A, P) for time-major q, k, v of one float dtype (see the module's math). vmask
    (Tv, B) and qmask (Tq, B) uint8, drop (B, Tq, Tv): None when absent. A (kept for the
    backward: keep) and P (scores) are None when not asked for."""
    dt = q.dtype
    Tq, B, _ = q.shape
    Tv = k.shape[0]
    none3 = stand_in((0, 0, 0), dt)
    none2 = buffers.read_only(stand_in((0, 0), np.uint8))
    C = buffers.empty((Tq, B, v.shape[2]), dt)
    A = buffers.empty((B, Tq, Tv), dt) if keep else none3
    P = buffers.empty((Tq, B, Tv), dt) if scores else none3
    args = (_read(q), _read(k), _read(v), none2 if vmask is None else _read(vmask),
            none2 if qmask is None else _read(qmask), bool(causal), dt.type(scale), dt.type(shift),
            buffers.read_only(none3) if drop is None else _read(drop), C, A, P)
    run_rows(dot_forward_kernel, args, B, B * Tq * Tv * (q.shape[2] + v.shape[2]))
    return C, (A if keep else None), (P if scores else None)


def dot_backward(q, k, v, qmask, scale, drop, A, dC, dP, has_key: bool):
    """(dQ, dK, dV, ds) of dot_forward's inputs from dC (Tq, B, dv) and dP (Tq, B, Tv)
    (either None when absent); dK is None without a key (its gradient is added into dV),
    ds the scale's gradient (a float64 number)."""
    dt = q.dtype
    Tq, B, d = q.shape
    Tv = k.shape[0]
    none3 = buffers.read_only(stand_in((0, 0, 0), dt))
    dQ = buffers.empty(q.shape, dt)
    dV = buffers.empty(v.shape, dt)
    dK = buffers.empty(k.shape, dt) if has_key else stand_in((0, 0, 0), dt)
    ds = np.empty(B, np.float64)
    args = (_read(q), _read(k), _read(v),
            buffers.read_only(stand_in((0, 0), np.uint8)) if qmask is None else _read(qmask),
            dt.type(scale), none3 if drop is None else _read(drop), _read(A),
            none3 if dC is None else _read(dC), none3 if dP is None else _read(dP), dQ, dK, dV, ds)
    run_rows(dot_backward_kernel, args, B, 2 * B * Tq * Tv * (d + v.shape[2]))
    return dQ, (dK if has_key else None), dV, float(ds.sum())
