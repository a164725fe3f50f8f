"""Optimizer updates on the device: one fused element-wise kernel per rule.

The rules are train/optimizers.py's (Keras 3), in the same order and with
the same operations, so float32 results agree with the CPU to rounding:

    g <- g * scale (clipnorm / global_clipnorm; scale = c / norm when norm > c, else 1)
    g <- clip(g, -c, c) (clipvalue)
    w <- w - w * (lr * weight_decay)
    then the rule's slot and weight update.

Clipping scales are computed on the device too (``clip_scale`` from a float64
sum of squares, see ops.sumsq), so an update never reads a number back to the
host. Launch: a 1-D grid-stride loop over the parameter's elements.
"""

from __future__ import annotations

import math
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
from numba import cuda


@lru_cache(maxsize=None)
def build(np_dtype: np.dtype) -> SimpleNamespace:
    # np_dtype keys the cache: numba compiles each kernel per argument types anyway
    @cuda.jit(device=True)
    def grad(g, i, scale, clip):
        """The gradient after clipping: scale is zero-length without clipnorm; clip <= 0: no clipvalue."""
        v = g[i]
        if scale.shape[0] > 0:
            v = v * scale[0]
        if clip > 0:
            if v > clip:                     # (comparisons, not min/max: see activations.py)
                v = clip
            elif v < -clip:
                v = -clip
        return v

    @cuda.jit
    def clip_scale(scale, sumsq, c):
        """scale = c / norm if norm > c else 1, norm = sqrt(sumsq) (one thread)."""
        if cuda.grid(1) == 0:
            norm = math.sqrt(sumsq[0])
            scale[0] = c / norm if norm > c else 1.0

    @cuda.jit
    def sgd(p, g, scale, clip, decay, lr, momentum, nesterov, m):
        """momentum 0: w -= lr g; else m = momentum m - lr g; w += m (nesterov: w += momentum m - lr g)."""
        for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
            gi = grad(g, i, scale, clip)
            w = p[i]
            if decay > 0:
                w -= w * decay
            if m.shape[0] == 0:
                w -= gi * lr
            else:
                mi = m[i] * momentum
                mi -= gi * lr
                m[i] = mi
                if nesterov:
                    w += mi * momentum
                    w -= gi * lr
                else:
                    w += mi
            p[i] = w

    @cuda.jit
    def adam(p, g, scale, clip, decay, alpha, one_m_b1, one_m_b2, eps, m, v, vhat):
        """m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); [vhat = max(vhat, v)]; w -= alpha m / (sqrt(v) + eps)."""
        for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
            gi = grad(g, i, scale, clip)
            w = p[i]
            if decay > 0:
                w -= w * decay
            mi = m[i] + (gi - m[i]) * one_m_b1
            vi = v[i] + (gi * gi - v[i]) * one_m_b2
            m[i] = mi
            v[i] = vi
            if vhat.shape[0] > 0:
                if vhat[i] > vi:
                    vi = vhat[i]
                vhat[i] = vi
            p[i] = w - mi / (math.sqrt(vi) + eps) * alpha

    @cuda.jit
    def rmsprop(p, g, scale, clip, decay, lr, rho, one_m_rho, eps, momentum, vel, mom, avg):
        """v = rho v + (1 - rho) g^2; denom = v [- a^2] + eps with a = rho a + (1 - rho) g (centered);
        inc = lr g / sqrt(denom); w -= inc, or with momentum mom = momentum mom + inc; w -= mom."""
        for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
            gi = grad(g, i, scale, clip)
            w = p[i]
            if decay > 0:
                w -= w * decay
            vi = vel[i] * rho + gi * gi * one_m_rho
            vel[i] = vi
            if avg.shape[0] > 0:
                ai = avg[i] * rho + gi * one_m_rho
                avg[i] = ai
                denom = vi - ai * ai + eps
            else:
                denom = vi + eps
            inc = gi / math.sqrt(denom) * lr
            if mom.shape[0] > 0:
                mi = mom[i] * momentum + inc
                mom[i] = mi
                w -= mi
            else:
                w -= inc
            p[i] = w

    @cuda.jit
    def adagrad(p, g, scale, clip, decay, lr, eps, acc):
        """acc += g^2; w -= lr g / sqrt(acc + eps)."""
        for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
            gi = grad(g, i, scale, clip)
            w = p[i]
            if decay > 0:
                w -= w * decay
            a = acc[i] + gi * gi
            acc[i] = a
            p[i] = w - gi / math.sqrt(a + eps) * lr

    return SimpleNamespace(clip_scale=clip_scale, sgd=sgd, adam=adam, rmsprop=rmsprop, adagrad=adagrad)
