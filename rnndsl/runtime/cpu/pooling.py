"""Sequence-to-vector layers on the CPU: masked average, max and flatten over the steps
(math: layers/pooling.py). x is time-major (T, B, F)."""

from __future__ import annotations

import numpy as np

from ...errors import DataError
from ..tensor import Act


def avg_forward(node, W, ins, ctx, init_state=None):
    """y = sum_t w_t x_t / max(sum_t w_t, 1), w the mask (ones without one)."""
    x = ins[0]
    X = x.data
    T, B, F = X.shape
    if x.mask is None:
        w, count = None, np.full(B, max(T, 1), X.dtype)
        total = X.sum(axis=0)
    else:
        w = x.mask.astype(X.dtype)[..., None]                 # (T, B, 1)
        count = np.maximum(w[..., 0].sum(axis=0), 1).astype(X.dtype)
        total = (X * w).sum(axis=0)
    Y = total / count[:, None]

    def backprop(d):
        g = d["out"] / count[:, None]                           # (B, F): each real step's share
        dX = np.broadcast_to(g, X.shape) if w is None else w * g
        return [np.ascontiguousarray(dX, dtype=X.dtype)], [], None

    return {"out": Act(Y)}, backprop


def max_forward(node, W, ins, ctx, init_state=None):
    """y = max over the steps; the gradient goes to the first step that holds it."""
    X = ins[0].data
    if X.shape[0] == 0:
        raise DataError(f"layer {node.name!r}: global_max_pool over a sequence of zero steps has no maximum")
    at = X.argmax(axis=0)                                       # (B, F)
    Y = np.take_along_axis(X, at[None], axis=0)[0]

    def backprop(d):
        dX = np.zeros_like(X)
        np.put_along_axis(dX, at[None], d["out"][None], axis=0)
        return [dX], [], None

    return {"out": Act(Y)}, backprop


def flatten_forward(node, W, ins, ctx, init_state=None):
    """(T, B, F) time-major -> (B, T F), the steps of each sample side by side."""
    X = ins[0].data
    T, B, F = X.shape
    Y = np.ascontiguousarray(X.transpose(1, 0, 2)).reshape(B, T * F)

    def backprop(d):
        return [np.ascontiguousarray(d["out"].reshape(B, T, F).transpose(1, 0, 2))], [], None

    return {"out": Act(Y)}, backprop
