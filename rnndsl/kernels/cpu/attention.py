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

Optional arrays are zero-size stand-ins (one signature per dtype, as activations.py's
kernels). Without a key of its own, k is v and dK is dV: the backward adds both into it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import buffers
from .activations import stand_in
from .parallel import run_rows

# reassoc lets the dot products' sums vectorise; contract, their FMAs; NaN and inf stay exact
_OPTIONS = dict(cache=True, error_model="numpy", nogil=True, fastmath={"reassoc", "contract"})


@njit(**_OPTIONS)
def _dot(a, b):
    acc = a.dtype.type(0)
    for f in range(a.shape[0]):
        acc += a[f] * b[f]
    return acc


@njit(**_OPTIONS)
def _axpy(dst, alpha, x):
    for f in range(dst.shape[0]):
        dst[f] += alpha * x[f]


@njit(**_OPTIONS)
def _softmax_row(q, k, vmask, causal, scale, shift, i, b, row):
    """row = softmax_j of the scores of query step i of sample b (its weights A_i)."""
    Tv = row.shape[0]
    top = -np.inf
    for j in range(Tv):
        sj = _dot(q[i, b], k[j, b]) * scale
        if (vmask.shape[0] != 0 and vmask[j, b] == 0) or (causal and j > i):
            sj -= shift
        row[j] = sj
        top = max(top, sj)
    total = row.dtype.type(0)
    for j in range(Tv):
        e = np.exp(row[j] - top)
        row[j] = e
        total += e
    for j in range(Tv):
        row[j] /= total


@njit(**_OPTIONS)
def dot_forward_kernel(q, k, v, vmask, qmask, causal, scale, shift, drop, C, A, P, b0, b1):
    """Samples b0..b1: C, and A when it has B samples (training), P when it has Tq steps."""
    Tq, Tv = q.shape[0], k.shape[0]
    keep, scores, dropped = A.shape[0] != 0, P.shape[0] != 0, drop.shape[0] != 0
    scratch = np.empty(Tv, C.dtype)
    for b in range(b0, b1):
        for i in range(Tq):
            row = A[b, i] if keep else scratch
            _softmax_row(q, k, vmask, causal, scale, shift, i, b, row)
            out = C[i, b]
            for f in range(out.shape[0]):
                out[f] = 0
            for j in range(Tv):
                a = row[j] * drop[b, i, j] if dropped else row[j]
                if scores:
                    P[i, b, j] = a
                _axpy(out, a, v[j, b])
            if qmask.shape[0] != 0 and qmask[i, b] == 0:
                for f in range(out.shape[0]):
                    out[f] = 0


@njit(**_OPTIONS)
def dot_backward_kernel(q, k, v, qmask, scale, drop, A, dC, dP, dQ, dK, dV, ds, b0, b1):
    """Samples b0..b1: dQ, dK and dV (the same array as dK without a key: both added in),
    ds[b] the scale's gradient from sample b. dC, dP: zero-size when absent."""
    Tq, Tv = q.shape[0], k.shape[0]
    d = q.shape[2]
    has_dC, has_dP, dropped = dC.shape[0] != 0, dP.shape[0] != 0, drop.shape[0] != 0
    dS = np.empty(Tv, q.dtype)
    G = np.empty(d, q.dtype)
    for b in range(b0, b1):
        for j in range(Tv):
            for f in range(d):
                dK[j, b, f] = 0
            for f in range(dV.shape[2]):
                dV[j, b, f] = 0
        acc = 0.0
        for i in range(Tq):
            real = has_dC and (qmask.shape[0] == 0 or qmask[i, b] != 0)
            a = A[b, i]
            for j in range(Tv):
                g = dP[i, b, j] if has_dP else q.dtype.type(0)
                if real:
                    g += _dot(dC[i, b], v[j, b])
                    _axpy(dV[j, b], a[j] * drop[b, i, j] if dropped else a[j], dC[i, b])
                dS[j] = g * drop[b, i, j] if dropped else g
            t = q.dtype.type(0)
            for j in range(Tv):
                t += dS[j] * a[j]
            for f in range(d):
                G[f] = 0
            for j in range(Tv):
                dS[j] = a[j] * (dS[j] - t)
                _axpy(G, dS[j], k[j, b])
            acc += _dot(q[i, b], G)
            out = dQ[i, b]
            for f in range(d):
                out[f] = scale * G[f]
            for j in range(Tv):
                _axpy(dK[j, b], scale * dS[j], q[i, b])
        ds[b] = acc


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
    none2 = stand_in((0, 0), np.uint8)
    C = buffers.empty((Tq, B, v.shape[2]), dt)
    A = buffers.empty((B, Tq, Tv), dt) if keep else none3
    P = buffers.empty((Tq, B, Tv), dt) if scores else none3
    args = (_read(q), _read(k), _read(v), none2 if vmask is None else _read(vmask),
            none2 if qmask is None else _read(qmask), bool(causal), dt.type(scale), dt.type(shift),
            none3 if drop is None else _read(drop), C, A, P)
    run_rows(dot_forward_kernel, args, B, B * Tq * Tv * (q.shape[2] + v.shape[2]))
    return C, (A if keep else None), (P if scores else None)


def dot_backward(q, k, v, qmask, scale, drop, A, dC, dP, has_key: bool):
    """(dQ, dK, dV, ds) of dot_forward's inputs from dC (Tq, B, dv) and dP (Tq, B, Tv)
    (either None when absent); dK is None without a key (its gradient is added into dV),
    ds the scale's gradient (a float64 number)."""
    dt = q.dtype
    Tq, B, d = q.shape
    Tv = k.shape[0]
    none3 = stand_in((0, 0, 0), dt)
    dQ = buffers.empty(q.shape, dt)
    dV = buffers.empty(v.shape, dt)
    dK = buffers.empty(k.shape, dt) if has_key else dV
    ds = np.empty(B, np.float64)
    args = (_read(q), _read(k), _read(v), stand_in((0, 0), np.uint8) if qmask is None else _read(qmask),
            dt.type(scale), none3 if drop is None else _read(drop), _read(A),
            none3 if dC is None else _read(dC), none3 if dP is None else _read(dP), dQ, dK, dV, ds)
    run_rows(dot_backward_kernel, args, B, 2 * B * Tq * Tv * (d + v.shape[2]))
    return dQ, (dK if has_key else None), dV, float(ds.sum())
