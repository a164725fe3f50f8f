"""BatchNormalization on the CPU: batch statistics over the unmasked rows in training (the
moving statistics' updates deferred to ctx.updates), the moving ones in inference (math:
layers/batchnorm.py)."""

from __future__ import annotations

import numpy as np

from ...kernels.cpu.ops import scale_shift
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
        total = ctx.allreduce  # data-parallel: moments over the global batch (sums over ranks)
        if total is None:
            count = w.sum()
            mean = (w @ X) / max(count, 1.0)
        else:
            s = total(np.concatenate([[w.sum()], w @ X]))
            count = s[0]
            mean = (s[1:] / max(count, 1.0)).astype(X.dtype)
        n = max(count, 1.0)
        Xc = X - mean
        var = (w @ (Xc * Xc)) / n if total is None else (total(w @ (Xc * Xc)) / n).astype(X.dtype)
        m = o["momentum"]
        if count > 0:     # zero steps (or every step masked): no statistics to move toward
            ctx.updates.append((moving_mean, m * moving_mean + (1 - m) * mean))
            ctx.updates.append((moving_var, m * moving_var + (1 - m) * var))
    else:
        mean, var, w, n, total = moving_mean, moving_var, None, None, None
        Xc = None
    inv_std = None if Xc is None else 1.0 / np.sqrt(var + eps)
    if Xc is None:
        # inference, as Keras (and PyTorch's CPU kernel) compute it: one multiply-add a value,
        # Y = X s + (beta - mean s) with s = gamma / sqrt(var + eps), s and the shift kept
        # between calls while the weights are unchanged. Like theirs, it rounds worse than
        # centring first where |mean| >> std in float32 (inputs 1e4 +- 0.1: 6e-3 off, against
        # 2e-7): normalise such data before the model. A backward pass, rare here, makes
        # inv_std and Xc when it runs.
        st = ctx.derived(("batchnorm", id(moving_var)), tuple(W),
                         lambda: _scale_shift(gamma, beta, moving_mean, moving_var, eps))
        Y = scale_shift(X, st)
        Xhat = None
    else:
        Xhat = Xc * inv_std
        Y = Xhat * gamma if gamma is not None else Xhat.copy()
        if beta is not None:
            Y += beta

    def backprop(d):
        nonlocal Xc, Xhat, inv_std
        if Xhat is None:
            inv_std = 1.0 / np.sqrt(var + eps)
            Xc = X - mean
            Xhat = Xc * inv_std
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
        s_xc, s_d = (dXhat * Xc).sum(axis=0), dXhat.sum(axis=0)
        if total is not None:                                      # sums over the global batch
            s = total(np.concatenate([s_xc, s_d])).astype(X.dtype)
            s_xc, s_d = s[:len(s_xc)], s[len(s_xc):]
        dvar = -0.5 * s_xc * inv_std ** 3
        dmean = -s_d * inv_std
        dX = dXhat * inv_std + (w[:, None] / n) * (dmean + 2.0 * Xc * dvar)
        return [dX.reshape(x.data.shape)], grads, None

    return {"out": Act(Y.reshape(x.data.shape), x.mask)}, backprop


def _scale_shift(gamma, beta, mean, var, eps):
    """[s; beta - mean s] (2, F), s = gamma / sqrt(var + eps): inference's Y = X s + shift."""
    s = 1.0 / np.sqrt(var + eps)
    if gamma is not None:
        s = s * gamma
    return np.stack([s, (beta - mean * s) if beta is not None else -mean * s])
