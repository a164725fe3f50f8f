"""BatchNormalization on the CPU: batch statistics over the unmasked rows in training (the
moving statistics' updates deferred to ctx.updates), the moving ones in inference (math:
layers/batchnorm.py)."""

from __future__ import annotations

import numpy as np

from ..tensor import Act, flat


def forward(node, W, ins, ctx, init_state=None):
    """Normalise over the last axis; backward through the statistics in training."""
    x = ins[0]
    o = node.opts
    gamma, beta, moving_mean, moving_var = node.spec.named_weights(o, W)
    X = flat(x.data)
    eps = o["epsilon"]
    if ctx.training:
        # batch statistics over every unmasked row (batch and, for sequences, steps)
        w = np.ones(len(X), X.dtype) if x.mask is None else flat(x.mask[..., None]).astype(X.dtype)[:, 0]
        n = max(w.sum(), 1.0)
        mean = (w @ X) / n
        Xc = X - mean
        var = (w @ (Xc * Xc)) / n
        m = o["momentum"]
        if w.sum() > 0:     # zero steps (or every step masked): no statistics to move toward
            ctx.updates.append((moving_mean, m * moving_mean + (1 - m) * mean))
            ctx.updates.append((moving_var, m * moving_var + (1 - m) * var))
    else:
        mean, var, w, n = moving_mean, moving_var, None, None
        Xc = X - mean
    inv_std = 1.0 / np.sqrt(var + eps)
    Xhat = Xc * inv_std
    Y = Xhat * gamma if gamma is not None else Xhat.copy()
    if beta is not None:
        Y += beta

    def backprop(d):
        dY = flat(d["out"])
        dXhat = dY * gamma if gamma is not None else dY          # undo Y = gamma * Xhat + beta
        grads = []
        if gamma is not None:
            grads.append((dY * Xhat).sum(axis=0))
        if beta is not None:
            grads.append(dY.sum(axis=0))
        grads += [None, None]                                      # moving statistics: not trained
        if w is None:                                              # inference: statistics are constants
            return [(dXhat * inv_std).reshape(x.data.shape)], grads, None
        # undo Xhat = (X - mean) * inv_std with mean and var taken over the weighted rows
        dvar = -0.5 * (dXhat * Xc).sum(axis=0) * inv_std ** 3
        dmean = -dXhat.sum(axis=0) * inv_std
        dX = dXhat * inv_std + (w[:, None] / n) * (dmean + 2.0 * Xc * dvar)
        return [dX.reshape(x.data.shape)], grads, None

    return {"out": Act(Y.reshape(x.data.shape), x.mask)}, backprop
