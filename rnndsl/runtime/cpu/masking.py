"""Masking on the CPU: the (T, B) mask of the steps whose features are not all mask_value,
and x with the masked steps zeroed (math: layers/masking.py)."""

from __future__ import annotations

import numpy as np

from ..tensor import Act


def forward(node, W, ins, ctx, init_state=None):
    """One pass over x for the mask, one product for y = x * m; backward dx = dy * m."""
    X = ins[0].data                                       # (T, B, F), time-major
    value = X.dtype.type(node.opts["mask_value"])
    mask = np.any(X != value, axis=-1).astype(np.uint8)   # (T, B)
    keep = mask[..., None].astype(X.dtype)
    return {"out": Act(X * keep, mask)}, lambda d: ([d["out"] * keep], [], None)
