"""Attention's kernels (the math: rnndsl/layers/attention.py; the CPU's NumPy version:
rnndsl/runtime/cpu/attention.py).

Every kernel is 1-D grid-stride over its outputs, one thread per output element, each
looping over the axis it sums (launches as in ops.py). Arrays are flat views:

    Q (Tq, B, d), K (Tv, B, d), V (Tv, B, dv), C (Tq, B, dv)   time-major, as layers pass them
    S, A, dS ... (B, Tq, Tv)                                    per sample, one row per query step
    qmask (Tq, B), keep (B, Tq, Tv) uint8                        zero-length when absent

mode: 0 dot (s q.k), 1 concat (c sum tanh(s (q + k))), 2 additive (sum w tanh(q + k)); the
weights s, c (one element) and w (d) are zero-length arrays when the layer has none. The
softmax and its backward are ops.py's row kernels over (B Tq, Tv).
"""

from __future__ import annotations

import math
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
from numba import cuda


@lru_cache(maxsize=None)
def build(np_dtype: np.dtype) -> SimpleNamespace:
    ty = np.dtype(np_dtype).type
    ZERO, ONE, SHIFT = ty(0.0), ty(1.0), ty(1.0e9)

    @cuda.jit
    def scores(S, R, Q, K, sw, cw, wv, keep, mode, B, Tq, Tv, d):
        """S[b, i, j]: the score of query step i against key step j, less 1e9 where not kept;
        R = q . k for dot scores when R is given (the scale's gradient reads it)."""
        for n in range(cuda.grid(1), S.shape[0], cuda.gridsize(1)):
            j = n % Tv
            r = n // Tv
            i = r % Tq
            b = r // Tq
            qo = (i * B + b) * d
            ko = (j * B + b) * d
            s = sw[0] if sw.shape[0] > 0 else ONE
            acc = ZERO
            if mode == 0:
                for f in range(d):
                    acc += Q[qo + f] * K[ko + f]
                if R.shape[0] > 0:
                    R[n] = acc
                acc = acc * s
            elif mode == 1:
                for f in range(d):
                    acc += math.tanh(s * (Q[qo + f] + K[ko + f]))
                acc = cw[0] * acc
            else:
                for f in range(d):
                    t = math.tanh(Q[qo + f] + K[ko + f])
                    acc += t * wv[f] if wv.shape[0] > 0 else t
            if keep.shape[0] > 0 and keep[n] == 0:
                acc = acc - SHIFT
            S[n] = acc

    @cuda.jit
    def context(C, A, V, qmask, B, Tq, Tv, dv):
        """C[i, b, e] = sum_j A[b, i, j] V[j, b, e], 0 where query step i is padding."""
        for n in range(cuda.grid(1), C.shape[0], cuda.gridsize(1)):
            e = n % dv
            r = n // dv
            b = r % B
            i = r // B
            acc = ZERO
            if qmask.shape[0] == 0 or qmask[i * B + b] != 0:
                ao = (b * Tq + i) * Tv
                for j in range(Tv):
                    acc += A[ao + j] * V[(j * B + b) * dv + e]
            C[n] = acc

    @cuda.jit
    def d_weights(dA, dC, V, qmask, dscores, B, Tq, Tv, dv):
        """dA[b, i, j] = sum_e dC[i, b, e] V[j, b, e] (0 for a padded query step), plus the
        scores output's own gradient when given."""
        for n in range(cuda.grid(1), dA.shape[0], cuda.gridsize(1)):
            j = n % Tv
            r = n // Tv
            i = r % Tq
            b = r // Tq
            acc = ZERO
            if dC.shape[0] > 0 and (qmask.shape[0] == 0 or qmask[i * B + b] != 0):
                co = (i * B + b) * dv
                vo = (j * B + b) * dv
                for e in range(dv):
                    acc += dC[co + e] * V[vo + e]
            if dscores.shape[0] > 0:
                acc += dscores[n]
            dA[n] = acc

    @cuda.jit
    def d_value(dV, A, dC, qmask, B, Tq, Tv, dv):
        """dV[j, b, e] = sum_i A[b, i, j] dC[i, b, e] over the real query steps."""
        for n in range(cuda.grid(1), dV.shape[0], cuda.gridsize(1)):
            e = n % dv
            r = n // dv
            b = r % B
            j = r // B
            acc = ZERO
            for i in range(Tq):
                if qmask.shape[0] == 0 or qmask[i * B + b] != 0:
                    acc += A[(b * Tq + i) * Tv + j] * dC[(i * B + b) * dv + e]
            dV[n] = acc

    @cuda.jit(device=True)
    def partial(g, mine, other, s, mode):
        """g dS_ij/dmine for the query's or the key's feature `mine` against `other` (the
        scores are symmetric in q and k), before the factor `finish` applies."""
        if mode == 0:
            return g * other
        t = math.tanh(s * (mine + other)) if mode == 1 else math.tanh(mine + other)
        return g * (ONE - t * t)

    @cuda.jit(device=True)
    def finish(acc, s, cw, wv, f, mode):
        if mode == 0:
            return acc * s
        if mode == 1:
            return acc * cw[0] * s
        return acc * wv[f] if wv.shape[0] > 0 else acc

    @cuda.jit
    def d_query(dQ, dS, Q, K, sw, cw, wv, mode, B, Tq, Tv, d):
        """dQ[i, b, f] = sum_j dS[b, i, j] dS_ij/dq_if."""
        for n in range(cuda.grid(1), dQ.shape[0], cuda.gridsize(1)):
            f = n % d
            r = n // d
            b = r % B
            i = r // B
            s = sw[0] if sw.shape[0] > 0 else ONE
            acc = ZERO
            for j in range(Tv):
                acc += partial(dS[(b * Tq + i) * Tv + j], Q[n], K[(j * B + b) * d + f], s, mode)
            dQ[n] = finish(acc, s, cw, wv, f, mode)

    @cuda.jit
    def d_key(dK, dS, Q, K, sw, cw, wv, mode, B, Tq, Tv, d):
        """dK[j, b, f] = sum_i dS[b, i, j] dS_ij/dk_jf."""
        for n in range(cuda.grid(1), dK.shape[0], cuda.gridsize(1)):
            f = n % d
            r = n // d
            b = r % B
            j = r // B
            s = sw[0] if sw.shape[0] > 0 else ONE
            acc = ZERO
            for i in range(Tq):
                acc += partial(dS[(b * Tq + i) * Tv + j], K[n], Q[(i * B + b) * d + f], s, mode)
            dK[n] = finish(acc, s, cw, wv, f, mode)

    @cuda.jit
    def weight_parts(P1, P2, dS, Q, K, sw, cw, mode, B, Tq, Tv, d):
        """Per (sample b, feature f), summed over i and j, what the weights' gradients sum:
        dot: P1 = dS q k (the scale's); concat: P1 = dS t (c's), P2 = c dS (1 - t^2)(q + k)
        (s's); additive: P1 = dS t (w_f's). The sums over b (and f) are column sums after."""
        for n in range(cuda.grid(1), P1.shape[0], cuda.gridsize(1)):
            f = n % d
            b = n // d
            s = sw[0] if sw.shape[0] > 0 else ONE
            a1 = ZERO
            a2 = ZERO
            for i in range(Tq):
                q = Q[(i * B + b) * d + f]
                for j in range(Tv):
                    g = dS[(b * Tq + i) * Tv + j]
                    k = K[(j * B + b) * d + f]
                    if mode == 0:
                        a1 += g * q * k
                    elif mode == 1:
                        u = q + k
                        t = math.tanh(s * u)
                        a1 += g * t
                        a2 += g * (ONE - t * t) * u
                    else:
                        a1 += g * math.tanh(q + k)
            P1[n] = a1
            if mode == 1:
                P2[n] = a2 * cw[0]

    return SimpleNamespace(scores=scores, context=context, d_weights=d_weights, d_value=d_value,
                           d_query=d_query, d_key=d_key, weight_parts=weight_parts)
