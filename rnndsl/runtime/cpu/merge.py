"""concat and add on the CPU (math: layers/merge.py); the step check and the merged mask
are runtime/merge.py's, shared with the CUDA engine."""

from __future__ import annotations

from itertools import accumulate

import numpy as np

from ...kernels.cpu import paths
from ..merge import combine_masks, same_steps
from ..tensor import Act


def concat_forward(node, W, ins, ctx, init_state=None):
    """[a, b, ...] along the features; backward splits the gradient. The join is made when
    a reader asks for it (Act.parts: a dense layer reads the parts in place), or at once
    on the plain route."""
    same_steps(node, ins)
    parts = [a.data for a in ins]
    sizes = list(accumulate(p.shape[-1] for p in parts))[:-1]     # (ints: NumPy's cumsum took microseconds)
    y = Act(mask=combine_masks([a.mask for a in ins]), parts=parts)
    if paths.plain():
        y = Act(y.data, y.mask)
    return {"out": y}, lambda d: (np.split(d["out"], sizes, axis=-1), [], None)


def add_forward(node, W, ins, ctx, init_state=None):
    """a + b + ...; each input gets the whole gradient."""
    same_steps(node, ins)
    y = ins[0].data.copy()
    for a in ins[1:]:
        y += a.data
    return {"out": Act(y, combine_masks([a.mask for a in ins]))}, lambda d: ([d["out"]] * len(ins), [], None)
