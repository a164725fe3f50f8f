"""Dot-product attention (Keras's Attention, score_mode="dot") on the CPU, compiled, reading
the time-major inputs in place. Per sample b (every sample independent, so the batch splits
across the workers as the recurrent kernels' rows do):

    S_ij = s * q_i . k_j,  minus MASKED_SHIFT where value step j is padding (vmask) or,
                           causal, j > i
    A_i  = softmax_j(S_i),  Ad = A * drop (dropout in training: m / (1 - rate), or none)
    C_i  = sum_j Ad_ij v_j,  0 where query step i is padding (qmask)

q (Tq, B, d), k (Tv, B, d), v (Tv, B, dv); C (Tq, B, dv); A (B, Tq, Tv), kept for the
backward (in inference nothing is kept: a sample at a time); the scores output P = Ad
(Tq, B, Tv). Backward, with dC zeroed at padded query steps:

    dAd_ij = dC_i . v_j (+ dP_ij),  dV_j = sum_i Ad_ij dC_i,  dA = dAd * drop
    dS_ij  = A_ij (dA_ij - sum_l dA_il A_il)           (the shift is a constant)
    G_i    = sum_j dS_ij k_j:  dQ_i = s G_i,  dK_j = s sum_i dS_ij q_i,  ds = sum_i q_i . G_i

In float32 each sample's products are register tiles (packed.py's k loop: 4 rows x 64
columns in 16 vector registers while k walks): C = Ad V_b, G = dS K_b, dK = s dS^T Q_b and
dV = Ad^T dC_b read the time-major rows of v, k, q and dC in place; the scores Q_b K_b^T and
dC_b V_b^T go against the sample's keys or values transposed into a zero-padded scratch.
float64 (and widths not a multiple of 16) take loops four rows at a time. The softmax's
float32 exp is a polynomial that vectorises (libm's expf does not; see exp_).

Optional arrays are zero-size stand-ins (one signature per dtype, as activations.py's
kernels). Without a key of its own, k is v: the backward adds dK into dV.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from . import buffers
from .activations import stand_in
from .packed import NB, V16, emit_kloop, row_stride
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
    """acc = sum_{j < n} w[j] Y[j, b] (acc a scratch row: a time-major output's rows lie a
    multiple of 4 KiB from the rows read, and stores there would stall the loads)."""
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


LANES = NB // 2          # floats in a 16-wide vector register


def _nn_tile(rows: int, nvec: int):
    """An intrinsic tile(O, A, Y, b, i0, c0): O[i0:i0+rows, c0:c0+16 nvec] = A[i0:i0+rows] @
    Y[:K, b, c0:c0+16 nvec] (float32, K = A's columns), Y a time-major (T, B, F) array read
    in place (any strides but a unit one along F), the block of O in rows x nvec vector registers while k walks (packed.py's loop)."""

    @intrinsic
    def tile(typingctx, O, A, Y, b, i0, c0):
        sig = types.void(O, A, Y, types.intp, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            oa, aa, ya = (context.make_array(t)(context, builder, v) for t, v in zip(signature.args[:3], args[:3]))
            b_, i0_, c0_ = args[3:]
            I64 = ir.IntType(64)
            o_stride, a_stride, y_stride = row_stride(builder, oa), row_stride(builder, aa), row_stride(builder, ya)
            K = cgutils.unpack_tuple(builder, aa.shape, 2)[1]
            b_stride = builder.sdiv(cgutils.unpack_tuple(builder, ya.strides, 3)[1], ir.Constant(ir.IntType(64), 4))
            a_base = builder.gep(aa.data, [builder.mul(i0_, a_stride)])                  # &A[i0, 0]
            y_base = builder.gep(ya.data, [builder.add(builder.mul(b_, b_stride), c0_)])  # &Y[0, b, c0]
            zero = ir.Constant(V16, [0.0] * LANES)
            acc = emit_kloop(builder, [[zero] * nvec for _ in range(rows)], a_base, a_stride, y_base, K,
                             p_stride=y_stride, cols=[LANES * q for q in range(nvec)])
            o_base = builder.gep(oa.data, [builder.add(builder.mul(i0_, o_stride), c0_)])
            for r in range(rows):
                for q in range(nvec):
                    off = builder.add(builder.mul(ir.Constant(I64, r), o_stride), ir.Constant(I64, LANES * q))
                    builder.store(acc[r][q], builder.bitcast(builder.gep(o_base, [off]), V16.as_pointer()), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


def _column_blocks(nvec: int):
    """An inline function blocks(O, A, Y, b, c0) -> c0: the columns c0.. of O in blocks of
    16 nvec while a whole block fits, each block's rows 4 at a time (the 4-row tile), the
    rest one by one; returns the first column left over."""
    t4, t1 = _nn_tile(4, nvec), _nn_tile(1, nvec)
    width = nvec * LANES

    @njit(**_INLINE)
    def blocks(O, A, Y, b, c0):
        M, F = A.shape[0], O.shape[1]
        while c0 + width <= F:
            i0 = 0
            while i0 + 4 <= M:
                t4(O, A, Y, b, i0, c0)
                i0 += 4
            while i0 < M:
                t1(O, A, Y, b, i0, c0)
                i0 += 1
            c0 += width
        return c0

    return blocks


# 4 rows x 64 columns: 16 accumulators, each k's four loads of Y feeding 16 FMAs; then
# 32 and 16 columns for the rest
_blocks4, _blocks2, _blocks1 = _column_blocks(4), _column_blocks(2), _column_blocks(1)


def nn_rows(O, A, Y, b):
    """O = A @ Y[:K, b] (A (M, K), O (M, F) and Y (T, B, F) with unit strides along their last
    axis). In compiled code the overload below; this body runs under NUMBA_DISABLE_JIT."""
    _nn_loops(O, A, Y, b)


@overload(nn_rows, jit_options=dict(error_model="numpy"))
def _nn_rows(O, A, Y, b):
    if getattr(A, "dtype", None) == types.float32:
        def impl(O, A, Y, b):
            if O.shape[1] % LANES != 0:
                _nn_loops(O, A, Y, b)
                return
            _blocks1(O, A, Y, b, _blocks2(O, A, Y, b, _blocks4(O, A, Y, b, 0)))
    else:
        def impl(O, A, Y, b):
            _nn_loops(O, A, Y, b)
    return impl


@njit(**_INLINE)
def _nn_loops(O, A, Y, b):
    for r in range(A.shape[0]):
        _combine(O[r], A[r], Y, b, A.shape[1])


@njit(**_INLINE)
def _transposed(Yt, Y, b):
    """Yt[f, 0, j] = Y[j, b, f] (Yt's columns past Y's steps stay as they are: zeros); four
    steps a pass, four adjacent floats written a feature (half the time of one a pass)."""
    T, F = Y.shape[0], Y.shape[2]
    j = 0
    while j + 4 <= T:
        for f in range(F):
            Yt[f, 0, j] = Y[j, b, f]
            Yt[f, 0, j + 1] = Y[j + 1, b, f]
            Yt[f, 0, j + 2] = Y[j + 2, b, f]
            Yt[f, 0, j + 3] = Y[j + 3, b, f]
        j += 4
    while j < T:
        for f in range(F):
            Yt[f, 0, j] = Y[j, b, f]
        j += 1


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
def dot_forward_kernel(q, k, v, vmask, qmask, causal, scale, shift, drop, tiled, C, A, P, b0, b1):
    """Samples b0..b1: C, and A when it has B samples (training), P when it has Tq steps.
    tiled (float32): the scores by the tile, against the sample's keys transposed (Kt)."""
    Tq, Tv, dv = q.shape[0], k.shape[0], v.shape[2]
    dt = C.dtype
    keep, scores, dropped, vmasked = A.shape[0] != 0, P.shape[0] != 0, drop.shape[0] != 0, vmask.shape[0] != 0
    W = A if keep else np.empty((1, Tq, Tv), dt)         # the weights; in inference a sample at a time
    Ad = np.empty((Tq, Tv), dt)                          # as they weigh the values: dropout, padded queries 0
    wide = -(-Tv // LANES) * LANES if tiled else 0
    Kt = np.zeros((q.shape[2], 1, wide), dt)
    Ss = np.empty((Tq, wide), dt)
    zero = dt.type(0)
    qmasked = qmask.shape[0] != 0
    direct = not dropped and not qmasked                 # the values weighed by W itself
    for b in range(b0, b1):
        Wb = W[b if keep else 0]
        if tiled:
            _transposed(Kt, k, b)
            nn_rows(Ss, q[:, b, :], Kt, 0)
        for i in range(Tq):
            row = Wb[i]
            # (few loops over a row, none with a branch inside: they vectorise)
            if tiled:
                for j in range(Tv):
                    row[j] = Ss[i, j] * scale
            else:
                _dots(row, q, i, b, k, Tv)
                for j in range(Tv):
                    row[j] *= scale
            if vmasked:                                  # shifted once, padded or ahead or both
                for j in range(Tv):
                    if vmask[j, b] == 0 or (causal and j > i):
                        row[j] -= shift
            elif causal:
                for j in range(i + 1, Tv):
                    row[j] -= shift
            top = dt.type(-np.inf)
            for j in range(Tv):
                top = max(top, row[j])
            _softmax(row, top)
            if direct:
                if scores:
                    for j in range(Tv):
                        P[i, b, j] = row[j]
                continue
            ad = Ad[i]
            if dropped:
                for j in range(Tv):
                    ad[j] = row[j] * drop[b, i, j]
            else:
                for j in range(Tv):
                    ad[j] = row[j]
            if scores:
                for j in range(Tv):
                    P[i, b, j] = ad[j]
            if qmasked and qmask[i, b] == 0:
                for j in range(Tv):
                    ad[j] = zero
        nn_rows(C[:, b, :], Wb if direct else Ad, v, b)
        if qmasked:
            for i in range(Tq):
                if qmask[i, b] == 0:                      # a padded query step: context 0
                    for f in range(dv):
                        C[i, b, f] = zero


@njit(**_OPTIONS)
def dot_backward_kernel(q, k, v, qmask, scale, drop, A, dC, dP, tiled, dQ, dK, dV, ds, b0, b1):
    """Samples b0..b1: dQ, dK and dV (dK zero-size without a key: its gradient is added
    into dV), ds[b] the scale's gradient from sample b. dC, dP: zero-size when absent.
    tiled (float32): dC V^T by the tile, against the sample's values transposed (Vt)."""
    Tq, Tv = q.shape[0], k.shape[0]
    d, dv = q.shape[2], v.shape[2]
    dt = q.dtype
    has_dC, has_dP, dropped, own_key = dC.shape[0] != 0, dP.shape[0] != 0, drop.shape[0] != 0, dK.shape[0] != 0
    zero = dt.type(0)
    g = np.empty(Tv, dt)
    dS = np.empty((Tq, Tv), dt)
    St = np.empty((Tv, Tq), dt)          # dS transposed: dK_b = s St Q_b
    Wt = np.empty((Tv, Tq), dt)          # Ad at real query steps, transposed: dV_b = Wt dC_b
    Gs = np.empty((Tq, d), dt)
    Ks = np.empty((Tv, d), dt)
    Vs = np.empty((Tv, dv), dt)
    wide = -(-Tv // LANES) * LANES if tiled and has_dC else 0
    Vt = np.zeros((dv, 1, wide), dt)
    Gd = np.empty((Tq, wide), dt)
    for b in range(b0, b1):
        if wide:
            _transposed(Vt, v, b)
            nn_rows(Gd, dC[:, b, :], Vt, 0)
        for i in range(Tq):
            real = has_dC and (qmask.shape[0] == 0 or qmask[i, b] != 0)
            a, w = A[b, i], Wt[:, i]
            if real and wide:
                for j in range(Tv):
                    g[j] = Gd[i, j]
            elif real:
                _dots(g, dC, i, b, v, Tv)
            else:
                for j in range(Tv):
                    g[j] = zero
            if has_dP:
                for j in range(Tv):
                    g[j] += dP[i, b, j]
            if dropped:
                for j in range(Tv):
                    g[j] *= drop[b, i, j]
                    w[j] = a[j] * drop[b, i, j]
            else:
                for j in range(Tv):
                    w[j] = a[j]
            if not real:
                for j in range(Tv):
                    w[j] = zero
            t = zero
            for j in range(Tv):
                t += g[j] * a[j]
            for j in range(Tv):
                e = a[j] * (g[j] - t)
                dS[i, j] = e
                St[j, i] = e
        nn_rows(Gs, dS, k, b)                       # G = dS K_b
        part = zero
        for i in range(Tq):
            for f in range(d):
                part += q[i, b, f] * Gs[i, f]
                dQ[i, b, f] = scale * Gs[i, f]
        ds[b] = part
        nn_rows(Ks, St, q, b)                       # dK_b / s
        if has_dC:
            nn_rows(Vs, Wt, dC, b)
        else:
            Vs[:] = zero
        for j in range(Tv):
            if own_key:
                for f in range(d):
                    dK[j, b, f] = scale * Ks[j, f]
                for f in range(dv):
                    dV[j, b, f] = Vs[j, f]
            else:
                for f in range(dv):
                    dV[j, b, f] = Vs[j, f] + scale * Ks[j, f]


# query steps from which the scores (and dC V^T) go through the tile: it needs the sample's
# keys (values) transposed first, which a step or two of queries (a decoder run step by step)
# does not repay
MIN_TILED_QUERIES = 4


def _tiled(dt, Tq: int) -> bool:
    return dt == np.float32 and Tq >= MIN_TILED_QUERIES


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
            buffers.read_only(none3) if drop is None else _read(drop), _tiled(dt, Tq), C, A, P)
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
    if dC is not None and (dC.dtype != dt or dC.strides[-1] != dt.itemsize):
        dC = np.ascontiguousarray(dC, dt)
    # dC read in place, whatever its strides (a concat's gradient split into its inputs' parts
    # is a view): typed any-layout, one compiled code for both
    args = (_read(q), _read(k), _read(v),
            buffers.read_only(stand_in((0, 0), np.uint8)) if qmask is None else _read(qmask),
            dt.type(scale), none3 if drop is None else _read(drop), _read(A),
            none3 if dC is None else buffers.read_only(dC), none3 if dP is None else _read(dP), _tiled(dt, Tq), dQ,
            dK, dV, ds)
    run_rows(dot_backward_kernel, args, B, 2 * B * Tq * Tv * (d + v.shape[2]), strided=(7,))
    return dQ, (dK if has_key else None), dV, float(ds.sum())
