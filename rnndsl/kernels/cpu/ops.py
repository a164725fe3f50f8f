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
