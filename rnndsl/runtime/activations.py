"""Activations for dense layers in NumPy: the rows of rnndsl/elementwise.py, each forward
z -> y and its backward (y, dy) -> dz from the output y (softmax over the last axis:
dz = y * (dy - sum(dy * y)))."""

from __future__ import annotations

import numpy as np

from ..elementwise import BY_NAME, DENSE


def _op(name: str):
    op = BY_NAME.get(name)
    if op is None or DENSE not in op.uses:
        raise ValueError(name)
    return op


def forward(name: str, z: np.ndarray) -> np.ndarray:
    return _op(name).np_forward(z)


def backward(name: str, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return _op(name).np_backward(y, dy)
