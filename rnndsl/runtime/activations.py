"""Element-wise activations for dense layers, each with its backward from the output y.

    tanh' = 1 - y^2   sigmoid' = y (1 - y)   relu' = [y > 0]   hard_sigmoid' = 1/6 on 0 < y < 1
    softmax: dz = y * (dy - sum(dy * y))
"""

from __future__ import annotations

import numpy as np


def forward(name: str, z: np.ndarray) -> np.ndarray:
    if name == "linear":
        return z
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + e^-z), without overflow
    if name == "relu":
        return np.maximum(z, 0)
    if name == "hard_sigmoid":
        return np.clip(z / 6.0 + 0.5, 0.0, 1.0).astype(z.dtype, copy=False)
    if name == "softmax":
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(name)


def backward(name: str, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    if name == "linear":
        return dy
    if name == "tanh":
        return dy * (1 - y * y)
    if name == "sigmoid":
        return dy * y * (1 - y)
    if name == "relu":
        return dy * (y > 0)
    if name == "hard_sigmoid":
        return dy * ((y > 0) & (y < 1)) / 6.0
    if name == "softmax":
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
    raise ValueError(name)
