"""Activations as CUDA device functions, built per float type from the rows of
rnndsl/elementwise.py (codes and derivatives through the saved output y as on the CPU).

act(x, code) and dact(y, code) are an if-chain over the codes, each branch the row's CUDA
template. Comparisons are written out rather than min()/max(): numba 0.68's built-in CUDA
target cannot compile those on scalars (it picks the CPU iterable overload). The constants
are numpy scalars of the kernel's float type, so float32 code never meets a float64 literal
(numba would promote the arithmetic to float64, which runs at a fraction of the speed on
most GPUs).
"""

from __future__ import annotations

import math
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
from numba import cuda

from ...elementwise import cuda_body, dispatch_rows


def dispatch_source(name: str, arg: str, template_of, doc: str) -> str:
    """``def name(arg, code)``: one branch per kernel row, the identity last (the fall-through)."""
    branches, last = dispatch_rows()
    lines = [f"def {name}({arg}, code):", f'    """{doc}"""']
    for op in branches:
        lines.append(f"    if code == {op.code}:")
        lines += [f"        {line}" for line in cuda_body(template_of(op), arg)]
    lines += [f"    {line}" for line in cuda_body(template_of(last), arg)]
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=None)
def build(np_dtype: np.dtype) -> SimpleNamespace:
    ty = np.dtype(np_dtype).type
    ZERO, ONE, HALF, SIXTH = ty(0.0), ty(1.0), ty(0.5), ty(1.0 / 6.0)
    scope = {"math": math, "zero": ZERO, "one": ONE, "half": HALF, "sixth": SIXTH}
    exec(dispatch_source("act", "x", lambda op: op.cuda_forward, "f_code(x)."), scope)  # noqa: S102
    exec(dispatch_source("dact", "y", lambda op: op.cuda_derivative, "f_code'(x) through y = f_code(x)."), scope)  # noqa: S102
    act, dact = cuda.jit(device=True)(scope["act"]), cuda.jit(device=True)(scope["dact"])
    return SimpleNamespace(act=act, dact=dact, ZERO=ZERO, ONE=ONE, HALF=HALF, SIXTH=SIXTH)
