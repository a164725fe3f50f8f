"""Activations as CUDA device functions, built per float type.

Codes as on the CPU (kernels/cpu/activations.py)::

    0 tanh          f' = 1 - y^2
    1 sigmoid       f(x) = 1/2 + tanh(x/2)/2 (= 1 / (1 + e^-x), never overflows)   f' = y (1 - y)
    2 relu          f' = [y > 0]
    3 linear        f' = 1
    4 hard_sigmoid  clip(x/6 + 1/2, 0, 1)                                         f' = [0 < y < 1] / 6

Derivatives are written through the saved output y. Comparisons are
written out rather than min()/max(): numba 0.68's built-in CUDA target
cannot compile those on scalars (it picks the CPU iterable overload). The constants are
numpy scalars of the kernel's float type, so float32 code never meets a
float64 literal (numba would promote the arithmetic to float64, which runs at
a fraction of the speed on most GPUs).
"""

from __future__ import annotations

import math
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
from numba import cuda

TANH, SIGMOID, RELU, LINEAR, HARD_SIGMOID = 0, 1, 2, 3, 4


@lru_cache(maxsize=None)
def build(np_dtype: np.dtype) -> SimpleNamespace:
    ty = np.dtype(np_dtype).type
    ZERO, ONE, HALF, SIXTH = ty(0.0), ty(1.0), ty(0.5), ty(1.0 / 6.0)

    @cuda.jit(device=True)
    def act(x, code):
        """f_code(x)."""
        if code == TANH:
            return math.tanh(x)
        if code == SIGMOID:
            return HALF + HALF * math.tanh(HALF * x)
        if code == RELU:
            return ZERO if x <= ZERO else x      # NaN fails the compare: it stays NaN
        if code == HARD_SIGMOID:
            y = x * SIXTH + HALF
            return ZERO if y < ZERO else (ONE if y > ONE else y)
        return x

    @cuda.jit(device=True)
    def dact(y, code):
        """f_code'(x) through y = f_code(x)."""
        if code == TANH:
            return ONE - y * y
        if code == SIGMOID:
            return y - y * y
        if code == RELU:
            return ONE if y > ZERO else ZERO
        if code == HARD_SIGMOID:
            return SIXTH if (y > ZERO and y < ONE) else ZERO
        return ONE

    return SimpleNamespace(act=act, dact=dact, ZERO=ZERO, ONE=ONE, HALF=HALF, SIXTH=SIXTH)
