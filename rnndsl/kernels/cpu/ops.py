"""Small compiled helpers for the non-recurrent layers."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .parallel import chunks


@njit(cache=True, nogil=True)
def embedding_grad(ids, dY, vocab):
    """dE[k] = sum of dY rows whose id is k (the backward of a row gather)."""
    n, d = dY.shape
    dE = np.zeros((vocab, d), dtype=dY.dtype)
    for r in range(n):
        k = ids[r]
        for j in range(d):
            dE[k, j] += dY[r, j]
    return dE


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _gather_rows(table, ids, out, parts):
    n, d = out.shape
    for p in prange(parts):
        for r in range(n * p // parts, n * (p + 1) // parts):
            src = table[ids[r]]
            dst = out[r]
            for j in range(d):
                dst[j] = src[j]


# floats copied from which a gather splits across the cores (below it starting the workers costs
# more than it saves; bench/README.md)
MIN_SPLIT_GATHER = 32_768


def gather_rows(table, ids, out):
    """out[...] = table[ids] (out: ids.shape + (d,), C-contiguous), rows split across the
    cores where there are enough (np.take runs on one core)."""
    flat_ids = np.ascontiguousarray(ids.reshape(-1))
    flat = out.reshape(flat_ids.shape[0], table.shape[1])
    _gather_rows(table, flat_ids, flat, len(chunks(flat.shape[0], flat.size, MIN_SPLIT_GATHER)))
    return out


# reassoc (only) lets the sum vectorise; the NaN/inf semantics stay exact
@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def all_finite(x):
    """No NaN or inf in the 1-D array x: one pass, nothing allocated (v * 0 is NaN
    exactly when v is NaN or inf, and a NaN makes the sum NaN)."""
    acc = x.dtype.type(0)
    for i in range(x.shape[0]):
        acc += x[i] * 0
    return acc == 0


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def abs_sum(x):
    """sum |x_i| of the 1-D array x, in float64: one pass, nothing allocated (NaN for a NaN
    in x, inf for an inf: a bound on every |x_i| that is never too small)."""
    acc = 0.0
    for i in range(x.shape[0]):
        acc += abs(x[i])
    return acc


@njit(cache=True, nogil=True, error_model="numpy")
def row_max(z):
    """z.max(axis=1) of a 2-D array: NumPy's reduction over a short last axis is slow, this loop
    is not (bench/README.md)."""
    n, c = z.shape
    out = np.empty(n, z.dtype)
    for r in range(n):
        m = z[r, 0]
        for j in range(1, c):
            m = max(m, z[r, j])
        out[r] = m
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def shift_rows_pick(z, labels, g, picked):
    """The first half of a softmax cross-entropy over rows of logits z (N, C):
    g = z - max(z) row by row, and picked[r] = g[r, labels[r]]. Returns the first row whose
    label is outside 0..C-1 (nothing picked from it), or -1."""
    n, c = z.shape
    bad = -1
    for r in range(n):
        m = z[r, 0]
        for j in range(1, c):
            m = max(m, z[r, j])
        for j in range(c):
            g[r, j] = z[r, j] - m
        k = labels[r]
        if 0 <= k < c:
            picked[r] = g[r, k]
        elif bad < 0:
            bad = r
    return bad


@njit(cache=True, nogil=True, error_model="numpy")
def softmax_ce_rows(e, labels, picked, per):
    """The second half, e holding exp(z - max): per[r] = log(sum e[r]) - picked[r], the loss
    -log softmax(z)[label]; e[r] becomes its gradient softmax(z) - onehot(label)."""
    n, c = e.shape
    for r in range(n):
        s = e.dtype.type(0)
        for j in range(c):
            s += e[r, j]
        per[r] = np.log(s) - picked[r]
        inv = 1 / s
        for j in range(c):
            e[r, j] *= inv
        e[r, labels[r]] -= 1


@njit(cache=True, nogil=True)
def ids_outside(ids, rows):
    """How many of the ids (1-D) fall outside 0..rows-1: one pass, where NumPy's min and max
    take two."""
    n = 0
    for i in range(ids.shape[0]):
        n += (ids[i] < 0) | (ids[i] >= rows)
    return n
