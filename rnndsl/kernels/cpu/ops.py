"""Small compiled helpers for the non-recurrent layers."""

from __future__ import annotations

import numpy as np
from numba import njit


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


# reassoc (only) lets the sum vectorise; the NaN/inf semantics stay exact
@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def all_finite(x):
    """No NaN or inf in the 1-D array x: one pass, nothing allocated (v * 0 is NaN
    exactly when v is NaN or inf, and a NaN makes the sum NaN)."""
    acc = x.dtype.type(0)
    for i in range(x.shape[0]):
        acc += x[i] * 0
    return acc == 0
