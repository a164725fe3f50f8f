"""Keras's default initialisers, drawn from one seeded generator in weight order."""

from __future__ import annotations

import numpy as np


def glorot_uniform(rng, shape):
    """U(-l, l), l = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = shape[0], shape[-1]
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def orthogonal(rng, shape):
    """An orthogonal matrix from the QR decomposition of a Gaussian one (signs fixed by diag(R))."""
    rows, cols = shape[0], int(np.prod(shape[1:]))
    a = rng.normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return q.reshape(shape)


def unit_forget_bias(rng, shape):
    """LSTM bias: zeros, with the forget gate's quarter (gate order i, f, c, o) set to 1."""
    b = np.zeros(shape)
    u = shape[-1] // 4
    b[..., u:2 * u] = 1.0
    return b


INITIALIZERS = {
    "glorot_uniform": glorot_uniform,
    "orthogonal": orthogonal,
    "zeros": lambda rng, shape: np.zeros(shape),
    "ones": lambda rng, shape: np.ones(shape),
    "unit_forget_bias": unit_forget_bias,
    "uniform_0.05": lambda rng, shape: rng.uniform(-0.05, 0.05, size=shape),
}


def initial_weights(specs, seed: int, dtype) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # (np.array, not ascontiguousarray: a scalar weight, shape (), stays 0-d as in Keras)
    return [np.array(INITIALIZERS[w.init](rng, w.shape), dtype=dtype, order="C") for w in specs]
