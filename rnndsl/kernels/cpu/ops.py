"""Small compiled helpers for the non-recurrent layers."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import buffers
from .activations import stand_in
from .parallel import chunks


@njit(cache=True, nogil=True)
def _add_rows_by_id(ids, dY, dE):
    n, d = dY.shape
    for r in range(n):
        k = ids[r]
        for j in range(d):
            dE[k, j] += dY[r, j]


def embedding_grad(ids, dY, vocab):
    """dE[k] = sum of dY rows whose id is k (the backward of a row gather); dE from the
    train step's pool (buffers.py), where the step's spent arrays can hold it."""
    dE = buffers.zeros((vocab, dY.shape[1]), dY.dtype)
    _add_rows_by_id(ids, dY, dE)
    return dE


@njit(cache=True, nogil=True)
def _rows_by_id(ids, vocab):
    """(order, starts): 0..n-1 sorted by ids[i] (a counting sort, stable), the rows of id k
    at order[starts[k]:starts[k + 1]]."""
    starts = np.zeros(vocab + 1, np.int64)
    for i in range(ids.shape[0]):
        starts[ids[i] + 1] += 1
    for k in range(vocab):
        starts[k + 1] += starts[k]
    fill = starts[:vocab].copy()
    order = np.empty(ids.shape[0], np.int64)
    for i in range(ids.shape[0]):
        k = ids[i]
        order[fill[k]] = i
        fill[k] += 1
    return order, starts


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _sum_by_id(d, order, starts, out, parts):
    V, G = out.shape
    for p in prange(parts):
        for k in range(V * p // parts, V * (p + 1) // parts):
            o = out[k]
            for j in range(G):
                o[j] = 0
            for i in range(starts[k], starts[k + 1]):
                src = d[order[i]]
                for j in range(G):
                    o[j] += src[j]


def sum_rows_by_id(ids, d, out):
    """out[k] = the sum of the rows d[i] with ids[i] == k, in increasing i, for ids (n,) and
    d (n, G) (a row gather's backward): each row of out written once, by one core (the
    table's rows split across the cores), from d's rows read in id order; no partial tables
    to add up."""
    order, starts = _rows_by_id(ids, out.shape[0])
    _sum_by_id(d, order, starts, out, len(chunks(out.shape[0], d.size, MIN_SPLIT_GATHER)))
    return out


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


def table_input(ids, table, U, gates: int):
    """Checked (ids, table) of a recurrent kernel reading rows of a projected table (V,
    gates*units), and the stand-ins for X and W (no columns) that go with them."""
    table = np.asarray(table)
    if table.dtype not in (np.float32, np.float64) or table.ndim != 2 or table.shape[1] != gates * np.shape(U)[0]:
        raise ValueError(f"table must be a float32 or float64 (vocab, {gates}*units) array, got {table.dtype} "
                         f"{table.shape}")
    ids = checked_ids(ids, table.shape[0], "ids")
    T, B = ids.shape
    dt = table.dtype
    return ids, np.ascontiguousarray(table), np.empty((T, B, 0), dt), np.empty((0, table.shape[1]), dt)


def checked_ids(ids, rows: int, name: str) -> np.ndarray:
    """ids as a C int64 (T, B) array, every id a row of a table of `rows` rows."""
    ids = np.ascontiguousarray(ids, np.int64)
    if ids.ndim != 2:
        raise ValueError(f"{name} must be (T, B), got shape {ids.shape}")
    if ids.size and ids_outside(ids.reshape(-1), rows):
        raise ValueError(f"{name} must lie in 0..{rows - 1}, got {ids.min()}..{ids.max()}")
    return ids


def embedding_view(E, xids):
    """(E, xids, X) for a recurrent kernel whose input is the rows E[xids[t]] of an embedding's
    table E (V, F): E C-contiguous, xids checked (T, B), and X a (T, B, F) view of E's first row
    at every step and sample, for the wrappers' shape checks (as np.broadcast_to makes it, in
    a fifth of the time)."""
    E = np.ascontiguousarray(E)
    xids = checked_ids(xids, np.shape(E)[0], "xids")
    if E.ndim != 2:
        raise ValueError(f"with xids, X must be an embedding table (V, F), got shape {E.shape}")
    return E, xids, np.ndarray(xids.shape + E.shape[1:], E.dtype, E, strides=(0, 0, E.strides[1]))


def embedding_input(inputs: tuple, E, xids, in_place: bool, dtype) -> tuple:
    """(inputs, xids) with x_t = E[xids[t]] in prepare_input's tuple: E itself as X[0] and xids
    kept where the kernel reads the rows in place (in_place, some steps), else the rows
    gathered into X and xids empty."""
    if in_place and xids.size:
        return (inputs[0], np.ascontiguousarray(E, dtype=dtype)[None]) + inputs[2:], xids
    rows = gather_rows(E.astype(dtype, copy=False), xids, buffers.empty(xids.shape + E.shape[1:], dtype))
    return (inputs[0], rows) + inputs[2:], stand_in((0, 0), np.int64)


@njit(cache=True, nogil=True, error_model="numpy")
def _scale_shift_rows(X, st, out):
    R, F = X.shape
    for r in range(R):
        for j in range(F):
            out[r, j] = X[r, j] * st[0, j] + st[1, j]


def scale_shift(X, st):
    """X * st[0] + st[1] for X (rows, F) and st (2, F) (batchnorm's inference): one compiled
    pass where NumPy takes two and a second array, rounded as NumPy rounds them (the
    product, then the sum: no fused multiply-add)."""
    if X.dtype == st.dtype and X.flags.c_contiguous and st.flags.c_contiguous and X.ndim == 2:
        out = buffers.empty(X.shape, X.dtype)
        _scale_shift_rows(X, st, out)
        return out
    Y = X * st[0]
    Y += st[1]
    return Y
